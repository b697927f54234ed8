"""Python distributions: ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO``, bare ``*.egg-info``."""

from __future__ import annotations

import re
from email.parser import HeaderParser

from packageurl import PackageURL

from core.scan.packages import Package, PackageType

_SEPARATORS = re.compile(r"[-_.]+")


def is_python_metadata(path: str) -> bool:
    if path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO")):
        return True
    return path.endswith(".egg-info") and "/" in path


def normalize_name(name: str) -> str:
    """PEP 503 normalisation: lower case, runs of ``-_.`` become one ``-``."""
    return _SEPARATORS.sub("-", name).lower()


def parse_python(text: str, location: str) -> Package | None:
    headers = HeaderParser().parsestr(text, headersonly=True)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    name, version = str(name).strip(), str(version).strip()
    license_text = headers.get("License-Expression") or headers.get("License") or ""
    license_line = str(license_text).strip().splitlines()[0] if str(license_text).strip() else ""
    # NOTE: reported under the normalised name, as the purl, OSV and Syft name it.
    normalized = normalize_name(name)
    purl = PackageURL("pypi", None, normalized, version).to_string()
    return Package(
        PackageType.PYPI,
        normalized,
        version,
        purl,
        location,
        licenses=(license_line,) if license_line and len(license_line) < 200 else (),  # noqa: PLR2004
    )
