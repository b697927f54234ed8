"""Java archives (jar, war, ear, jpi, hpi): ``pom.properties``, the manifest, nested jars.

An archive is copied to a bounded spooled temporary file while its layer streams, then
read as a zip with limits on entries, expanded bytes, compression ratio and nesting.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from packageurl import PackageURL

from core.scan.errors import ScanFailedError
from core.scan.layers import Reader
from core.scan.packages import Package, PackageType

ARCHIVE_SUFFIXES = (".jar", ".war", ".ear", ".par", ".sar", ".nar", ".jpi", ".hpi")
_POM = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")
_FILENAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*(?:-[^-]+)*?)$")
_CHUNK = 1024 * 1024
_RATIO_FLOOR = 1024 * 1024  # entries smaller than this are never called bombs


@dataclass(frozen=True)
class ArchiveLimits:
    max_depth: int
    max_entries: int
    max_bytes: int
    max_ratio: int
    max_file_bytes: int
    spool_bytes: int


class _Expanded:
    """Bytes expanded from one top-level archive and everything nested in it."""

    def __init__(self, limit: int, location: str) -> None:
        self.left = limit
        self.location = location

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ScanFailedError(
                f"/{self.location} expands to more than max_archive_bytes (an archive bomb)"
            )


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def parse_manifest(text: str) -> dict[str, str]:
    """The main section of ``MANIFEST.MF`` (72-byte lines, continuations start with a space)."""
    values: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line:
            break
        if line.startswith(" ") and last:
            values[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            values[last] = value.strip()
    return values


def parse_properties(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def maven_package(group: str, artifact: str, version: str, location: str) -> Package:
    purl = PackageURL("maven", group or None, artifact, version).to_string()
    return Package(PackageType.MAVEN, artifact, version, purl, location)


def _read_entry(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limits: ArchiveLimits,
    expanded: _Expanded,
    location: str,
) -> bytes:
    if info.file_size > limits.max_file_bytes:
        raise ScanFailedError(f"/{location}!{info.filename} is larger than max_file_bytes")
    ratio_limit = max(max(info.compress_size, 1) * limits.max_ratio, _RATIO_FLOOR)
    cap = min(limits.max_file_bytes, ratio_limit, max(expanded.left, 0))
    with archive.open(info) as entry:
        data = entry.read(cap + 1)
    if len(data) > cap:
        if cap == limits.max_file_bytes:
            raise ScanFailedError(f"/{location}!{info.filename} is larger than max_file_bytes")
        if cap == ratio_limit:
            raise ScanFailedError(
                f"/{location}!{info.filename} expands beyond max_archive_ratio (an archive bomb)"
            )
    expanded.spend(len(data))
    return data


def _main_package(name: str, manifest: dict[str, str], location: str) -> Package | None:
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    match = _FILENAME.match(stem)
    artifact = match.group("name") if match else stem
    version = (
        (match.group("version") if match else "")
        or manifest.get("Implementation-Version")
        or manifest.get("Bundle-Version")
        or manifest.get("Specification-Version", "")
    )
    if not artifact or not version:
        return None
    group = manifest.get("Implementation-Vendor-Id", "")
    return maven_package(group, artifact, version, location)


def _scan_zip(
    archive: zipfile.ZipFile,
    name: str,
    location: str,
    depth: int,
    limits: ArchiveLimits,
    expanded: _Expanded,
) -> list[Package]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ScanFailedError(f"/{location} has more entries than max_archive_entries")
    manifest: dict[str, str] = {}
    found: list[Package] = []
    nested: list[zipfile.ZipInfo] = []
    for info in infos:
        if info.filename == "META-INF/MANIFEST.MF":
            text = _read_entry(archive, info, limits, expanded, location)
            manifest = parse_manifest(text.decode("utf-8", "replace"))
        elif _POM.match(info.filename):
            props = parse_properties(
                _read_entry(archive, info, limits, expanded, location).decode("utf-8", "replace")
            )
            if props.get("artifactId") and props.get("version"):
                found.append(
                    maven_package(
                        props.get("groupId", ""), props["artifactId"], props["version"], location
                    )
                )
        elif is_archive(info.filename) and not info.is_dir():
            nested.append(info)
    main = _main_package(name, manifest, location)
    if main is not None and not any(p.name == main.name for p in found):
        found.insert(0, main)
    for info in nested:
        if depth + 1 > limits.max_depth:
            raise ScanFailedError(f"/{location} nests archives deeper than max_archive_depth")
        data = _read_entry(archive, info, limits, expanded, location)
        found.extend(
            _scan_bytes(
                data, info.filename, f"{location}!{info.filename}", depth + 1, limits, expanded
            )
        )
    return found


def _scan_bytes(
    data: bytes, name: str, location: str, depth: int, limits: ArchiveLimits, expanded: _Expanded
) -> list[Package]:
    with tempfile.SpooledTemporaryFile(max_size=limits.spool_bytes) as spool:
        spool.write(data)
        del data
        return _scan_file(spool, name, location, depth, limits, expanded)


def _scan_file(
    spool: IO[bytes],
    name: str,
    location: str,
    depth: int,
    limits: ArchiveLimits,
    expanded: _Expanded,
) -> list[Package]:
    spool.seek(0)
    try:
        with zipfile.ZipFile(spool) as archive:
            return _scan_zip(archive, name, location, depth, limits, expanded)
    except ScanFailedError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        if depth == 0:
            return []  # NOTE: a file named .jar that is no zip is not a Java archive
        raise ScanFailedError(f"/{location} is a corrupt archive: {exc}") from exc


def java_parser(limits: ArchiveLimits) -> Callable[[str, Reader, int], tuple[Package, ...]]:
    """A stream-time parser for archives found in layers."""

    def parse(path: str, reader: Reader, size: int) -> tuple[Package, ...]:
        if size > limits.max_file_bytes:
            raise ScanFailedError(f"/{path} is larger than max_file_bytes")
        with tempfile.SpooledTemporaryFile(max_size=limits.spool_bytes) as spool:
            shutil.copyfileobj(reader, spool, _CHUNK)
            expanded = _Expanded(limits.max_bytes, path)
            return tuple(_scan_file(spool, path, path, 0, limits, expanded))

    return parse
