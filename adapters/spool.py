"""Scratch files of proxy downloads (``core.proxy_flights.Spool``) in one local directory.

A spool lives only while its download runs; readers hold their own open handle, so the
file's removal never cuts a follower short. Leftovers of a crashed process are removed
when a process with the same id prepares its directory (:class:`FileSpools`). A
:class:`FileView` is a spool of a file someone else writes: the cache's own upload file
when the blob store keeps uploads in local files, so a download is written once.

:class:`FileFlightNotices` are the notices (``core.proxy_flights.FlightNotices``) by which
the process downloading a blob tells the host's other processes where its spool is: one
small JSON file per lock key, replaced atomically, naming the publishing process so a
notice left by a process that died is ignored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from core.proxy_flights import Notice, Spool

#: Lock files are buckets of keys (a collision only makes two downloads take turns).
_LOCK_BUCKET_HEX = 3


class _Reader:
    """Reads a file by offset through its own descriptor (closed by :meth:`close`)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class FileSpool:
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{uuid.uuid4().hex}.part"
        self._handle = self.path.open("xb")

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._handle.flush()

    def reader(self) -> _Reader:
        return _Reader(os.open(self.path, os.O_RDONLY))

    def name(self) -> str:
        return str(self.path)

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class FileView:
    """A spool of a file another writer appends to (``Spools.over``).

    It holds the file open from the start, and every reader is a duplicate of that
    handle, so the file's rename or removal (the upload finished or dropped) never takes
    the bytes from a reader, even one opened later.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = os.open(path, os.O_RDONLY)

    def write(self, data: bytes) -> None:
        del data
        raise ValueError("a viewed file is written by its own writer")

    def reader(self) -> _Reader:
        if self._fd is None:
            raise FileNotFoundError(self._path)
        return _Reader(os.dup(self._fd))

    def name(self) -> str:
        return self._path

    def discard(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class FileSpools:
    """Spools under ``directory/<pid>``, created, with files an earlier process left removed.

    One directory per process id, so API worker processes sharing a data directory never
    touch each other's downloads.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory / str(os.getpid())
        self._directory.mkdir(parents=True, exist_ok=True)
        for leftover in self._directory.glob("*.part"):
            leftover.unlink(missing_ok=True)

    def new(self) -> Spool:
        return FileSpool(self._directory)

    def over(self, path: str) -> Spool:
        return FileView(path)


class FileFetchLocks:
    """``flock`` locks in one directory, shared by the processes of a host.

    Keys hash into a bounded set of lock files; the kernel releases a lock when its
    process dies, so a crashed download never blocks the others.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory

    def try_lock(self, key: str) -> Callable[[], None] | None:
        bucket = hashlib.sha256(key.encode()).hexdigest()[:_LOCK_BUCKET_HEX]
        fd = os.open(self._directory / f"{bucket}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        return release


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileFlightNotices:
    """Notices as files in one directory shared by the processes of a host."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory

    def _path(self, key: str) -> Path:
        return self._directory / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def publish(self, key: str, notice: Notice) -> None:
        path = self._path(key)
        body = {
            "key": key,
            "pid": os.getpid(),
            "spool": notice.spool,
            "size": notice.size,
            "verified": notice.verified,
        }
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        scratch.write_text(json.dumps(body), encoding="utf-8")
        scratch.replace(path)

    def withdraw(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def look(self, key: str) -> Notice | None:
        try:
            body = json.loads(self._path(key).read_text(encoding="utf-8"))
            spool, pid = str(body["spool"]), int(body["pid"])
            notice = Notice(spool, int(body["size"]), bool(body["verified"]))
            if body["key"] != key or not _alive(pid):
                return None
            return replace(notice, written=Path(spool).stat().st_size)
        except (OSError, ValueError, KeyError, TypeError):
            return None
