"""Free space of the local filesystems the registry writes to, and when it is too little.

With the embedded defaults the SQLite database and the filesystem blob store (uploads in
progress included) live on local disks. When one of them runs out, pushes fail with
``507`` (``api.storage_full``) while pulls go on; this check lets ``/readyz?verbose``
(and anything watching it) see the shortage before that happens. It never makes a process
unready: reads still work on a full disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from core.settings import Settings, StorageBackend

_SQLITE_FILE = "sqlite:///"


class LowDiskSpaceError(Exception):
    """A local filesystem the registry writes to has less free space than configured."""


def local_write_paths(settings: Settings) -> list[Path]:
    """The local directories written to: the SQLite database's and the blob store's."""
    paths: list[Path] = []
    url = settings.resolved_database_url
    if url.startswith(_SQLITE_FILE):
        paths.append(Path(url.removeprefix(_SQLITE_FILE)).resolve().parent)
    if settings.storage is StorageBackend.FILESYSTEM:
        paths.append(settings.resolved_blob_root)
    return paths


def check_free_space(paths: Iterable[Path], minimum_bytes: int) -> None:
    """Raise :class:`LowDiskSpaceError` naming every path with less than ``minimum_bytes`` free.

    A path that does not exist yet is checked at its nearest existing parent.
    """
    short: list[str] = []
    for path in paths:
        existing = next((p for p in (path, *path.parents) if p.exists()), path)
        free = shutil.disk_usage(existing).free
        if free < minimum_bytes:
            short.append(f"{path}: {free} bytes free, below {minimum_bytes}")
    if short:
        raise LowDiskSpaceError("; ".join(short))
