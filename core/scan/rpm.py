"""rpm databases in SQLite form (``rpmdb.sqlite``: Fedora, RHEL 9 and its rebuilds).

The database is copied to a bounded temporary file while its layer streams, opened
read-only, and each header blob is decoded (big-endian index entries and a data store).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packageurl import PackageURL

from core.scan.errors import ScanFailedError
from core.scan.layers import Reader
from core.scan.packages import OsRelease, Package, PackageType

DB_NAMES = ("usr/lib/sysimage/rpm/rpmdb.sqlite", "var/lib/rpm/rpmdb.sqlite")
_NAME, _VERSION, _RELEASE, _EPOCH, _LICENSE, _ARCH, _SOURCERPM = (
    1000,
    1001,
    1002,
    1003,
    1014,
    1022,
    1044,
)
_DIRINDEXES, _BASENAMES, _DIRNAMES = 1116, 1117, 1118
_INT32, _STRING, _STRING_ARRAY, _I18N = 4, 6, 8, 9
_ENTRY = struct.Struct(">iIiI")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RpmEntry:
    name: str
    version: str
    release: str
    epoch: int | None
    arch: str
    source_rpm: str
    license: str
    files: tuple[str, ...]


def is_rpmdb(path: str) -> bool:
    return path.endswith("/rpmdb.sqlite") and path in DB_NAMES


def read_rpmdb(path: str, reader: Reader, size: int, max_bytes: int) -> tuple[RpmEntry, ...]:
    """Decode every header of the SQLite rpm database streamed by ``reader``."""
    if size > max_bytes:
        raise ScanFailedError(f"/{path} is larger than max_file_bytes")
    handle, name = tempfile.mkstemp(suffix=".sqlite")
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
        return _decode_db(path, name)
    finally:
        Path(name).unlink()


def _decode_db(path: str, name: str) -> tuple[RpmEntry, ...]:
    try:
        with sqlite3.connect(f"file:{name}?mode=ro&immutable=1", uri=True) as db:
            rows = db.execute("SELECT blob FROM Packages").fetchall()
    except sqlite3.Error as exc:
        raise ScanFailedError(f"/{path} is not a readable rpm database: {exc}") from exc
    return tuple(entry for (blob,) in rows if (entry := decode_header(bytes(blob))) is not None)


def decode_header(blob: bytes) -> RpmEntry | None:
    """One package header; ``None`` for headers without a name and version."""
    if len(blob) < 8:  # noqa: PLR2004 - il and dl
        return None
    count, data_length = struct.unpack_from(">II", blob)
    store_at = 8 + count * _ENTRY.size
    if store_at + data_length > len(blob):
        return None
    store = blob[store_at : store_at + data_length]
    tags: dict[int, object] = {}
    for i in range(count):
        tag, kind, offset, items = _ENTRY.unpack_from(blob, 8 + i * _ENTRY.size)
        if 0 <= offset < len(store):
            tags[tag] = _value(store, kind, offset, items)
    name, version = tags.get(_NAME), tags.get(_VERSION)
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    epoch = tags.get(_EPOCH)
    return RpmEntry(
        name,
        version,
        _text(tags.get(_RELEASE)),
        epoch[0] if isinstance(epoch, list) and epoch else None,
        _text(tags.get(_ARCH)),
        _text(tags.get(_SOURCERPM)),
        _text(tags.get(_LICENSE)),
        _files(tags),
    )


def _text(value: object) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return value if isinstance(value, str) else ""


def _value(store: bytes, kind: int, offset: int, items: int) -> object:
    if kind == _INT32:
        items = min(items, (len(store) - offset) // 4)
        return list(struct.unpack_from(f">{items}i", store, offset))
    if kind in {_STRING, _STRING_ARRAY, _I18N}:
        strings = []
        at = offset
        for _ in range(items if kind != _STRING else 1):
            end = store.find(b"\0", at)
            if end < 0:
                break
            strings.append(store[at:end].decode("utf-8", "replace"))
            at = end + 1
        return strings[0] if kind == _STRING and strings else strings
    return None


def _files(tags: dict[int, object]) -> tuple[str, ...]:
    bases, dirs, indexes = tags.get(_BASENAMES), tags.get(_DIRNAMES), tags.get(_DIRINDEXES)
    if not isinstance(bases, list) or not isinstance(dirs, list) or not isinstance(indexes, list):
        return ()
    return tuple(
        f"{dirs[i]}{base}".lstrip("/")
        for base, i in zip(bases, indexes, strict=False)
        if isinstance(i, int) and 0 <= i < len(dirs)
    )


def split_source_rpm(source_rpm: str) -> tuple[str, str] | None:
    """``openssl-3.0.7-27.el9.src.rpm`` -> (``openssl``, ``3.0.7-27.el9``)."""
    stem = source_rpm.removesuffix(".rpm")
    stem = stem.rsplit(".", 1)[0] if stem.endswith((".src", ".nosrc")) else stem
    parts = stem.rsplit("-", 2)
    if len(parts) != 3:  # noqa: PLR2004 - name, version, release
        return None
    return parts[0], f"{parts[1]}-{parts[2]}"


def rpm_packages(
    entries: tuple[RpmEntry, ...], location: str, os_release: OsRelease | None
) -> list[Package]:
    packages = []
    for entry in entries:
        if entry.name == "gpg-pubkey":
            continue
        version = f"{entry.version}-{entry.release}" if entry.release else entry.version
        qualifiers = {"arch": entry.arch} if entry.arch else {}
        if entry.epoch is not None:
            qualifiers["epoch"] = str(entry.epoch)
        if os_release is not None and os_release.version_id:
            qualifiers["distro"] = f"{os_release.id}-{os_release.version_id}"
        namespace = os_release.id if os_release is not None else "redhat"
        purl = PackageURL("rpm", namespace, entry.name, version, qualifiers).to_string()
        source = split_source_rpm(entry.source_rpm)
        epoch = f"{entry.epoch}:" if entry.epoch else ""
        packages.append(
            Package(
                PackageType.RPM,
                entry.name,
                version,
                purl,
                location,
                source[0] if source else entry.name,
                f"{epoch}{source[1]}" if source else f"{epoch}{version}",
                (entry.license,) if entry.license else (),
                entry.files,
            )
        )
    return packages
