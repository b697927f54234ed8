"""Moorage's version, kept in one place: ``version`` in ``pyproject.toml``.

``moorage --version``, ``GET /api/v1/systeminfo``, the OpenAPI document and the SBOM all
show this one value. In a source checkout the ``pyproject.toml`` beside the packages is
read (so a bump shows at once, without reinstalling); an installed wheel answers its
distribution metadata, which the build copied from the same file.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "moorage"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
UNKNOWN = "0+unknown"


@cache
def moorage_version() -> str:
    """The version string (``0+unknown`` only if neither source can be read)."""
    try:
        with PYPROJECT.open("rb") as file:
            project = tomllib.load(file).get("project", {})
        if project.get("name") == DISTRIBUTION and isinstance(project.get("version"), str):
            return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
