"""Blob store on a local (or mounted POSIX) filesystem.

This module is the only place that knows the on-disk layout::

    <root>/
    └── tenants/
        └── <tenant>/                   everything of one tenant; delete_tenant removes it
            ├── blobs/
            │   └── <alg>/              sha256 or sha512
            │       └── <hex[:2]>/
            │           └── <hex>       immutable blob content, named by its digest
            ├── uploads/
            │   └── <upload_id>/
            │       └── data            the upload's bytes, appended in place
            └── tmp/
                └── <random>.tmp        put_blob/copy_blob files before their rename

Tenant ids, upload ids and digests are validated before any path is built from them
(see :mod:`storage.blobs.naming`), so no path ever leaves ``<root>/tenants/<tenant>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from core.ports import BlobLocation, BlobNotFoundError, UploadNotFoundError
from storage.blobs.naming import check_digest, check_tenant, check_upload_id, parse_blob_name
from storage.blobs.writeback import start_writeback

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from core.digests import Digest

_CHUNK = 1024 * 1024
#: An upload's written bytes are waited for (``fdatasync``) every this many bytes, in the
#: background, so the fsync of ``commit`` finds little left to write; each write's bytes
#: were queued for write-back as it was written (``storage.blobs.writeback``).
_SYNC_EVERY = 32 * 1024 * 1024
_SYNCER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload-sync")
#: Threads unlinking the blobs of one ``delete_blobs`` call (GC's batches).
_UNLINKERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="blob-unlink")


class FilesystemUploadWriter:
    """Appends one request's bytes to an upload's ``data`` file.

    Consistency guarantees: opening the writer truncates the file to ``offset``, so the
    bytes of an interrupted request vanish; :meth:`commit` fsyncs before it returns the
    new size (and fails if any background flush of this writer failed); :meth:`abort`
    truncates back to ``offset``. Bytes start on their way to disk as they arrive: each
    write's range is queued for write-back at once (``storage.blobs.writeback``, where
    the system offers it) and an ``fdatasync`` runs in the background every 32 MiB. Both
    only move work ahead of ``commit``, so a client that waits for each chunk's answer
    (a chunked push) does not wait for all of the chunk's bytes to be written after the
    last one arrived.
    """

    def __init__(self, path: Path, offset: int) -> None:
        if offset < 0:
            raise ValueError("offset must not be negative")
        try:
            # Unbuffered: a writer dropped without commit or abort leaves no pending
            # buffer that could land in the file after a later writer truncated it.
            file = path.open("r+b", buffering=0)
        except FileNotFoundError:
            raise UploadNotFoundError(str(path.parent.name)) from None
        size = os.fstat(file.fileno()).st_size
        if size < offset:
            file.close()
            raise ValueError(f"upload holds {size} bytes, fewer than offset {offset}")
        file.truncate(offset)
        file.seek(offset)
        self._file: BinaryIO | None = file
        self._offset = offset
        self._written = 0
        self._unsynced = 0
        self._sync: Future[None] | None = None

    def _open_file(self) -> BinaryIO:
        if self._file is None:
            raise ValueError("the writer was already committed or aborted")
        return self._file

    def write(self, data: bytes) -> None:
        """Append ``data`` to the upload file."""
        file = self._open_file()
        view = memoryview(data)
        while view:
            view = view[file.write(view) or 0 :]
        start_writeback(file.fileno(), self._offset + self._written, len(data))
        self._written += len(data)
        self._unsynced += len(data)
        if self._unsynced >= _SYNC_EVERY and (self._sync is None or self._sync.done()):
            self._settle()  # NOTE: a finished flush that failed fails the write at once
            self._unsynced = 0
            self._sync = _SYNCER.submit(os.fdatasync, file.fileno())

    def _settle(self) -> None:
        """Wait for the background flush, if any, and raise its error.

        Never swallowed: the kernel may report a write-back error only once.
        """
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.result()

    def commit(self) -> int:
        """Flush and fsync the file; return the upload's new size."""
        file = self._open_file()
        try:
            self._settle()
            file.flush()
            os.fsync(file.fileno())
        finally:
            file.close()
            self._file = None
        return self._offset + self._written

    def abort(self) -> None:
        """Cut the file back to the offset the writer was opened at; idempotent."""
        file = self._file
        if file is None:
            return
        self._file = None
        try:
            with contextlib.suppress(OSError):  # NOTE: its bytes are being cut off anyway
                self._settle()
            file.truncate(self._offset)
        finally:
            file.close()


class FilesystemBlobStore:
    """Blobs and uploads kept as files under one root directory, one tree per tenant.

    Consistency guarantees:

    - A blob file appears under its digest only by an atomic rename of a fully
      written file, so a reader sees either no blob or all of its bytes; blob files are
      never modified in place, and a blob that already exists is left as it is.
    - An upload's committed bytes are fsynced before ``commit`` returns; bytes past the
      offset a writer is opened at are discarded.
    - Tenants never share files: ``copy_blob`` copies the bytes.
    - Every method is safe to retry; removing something missing is not an error.
    """

    def __init__(self, root: Path) -> None:
        self._root = root

    # layout -------------------------------------------------------------------------
    def _tenant_dir(self, tenant: str) -> Path:
        return self._root / "tenants" / check_tenant(tenant)

    def _blob_path(self, tenant: str, digest: Digest) -> Path:
        check_digest(digest)
        return self._tenant_dir(tenant) / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex

    def _upload_dir(self, tenant: str, upload_id: str) -> Path:
        return self._tenant_dir(tenant) / "uploads" / check_upload_id(upload_id)

    def _tmp_dir(self, tenant: str) -> Path:
        return self._tenant_dir(tenant) / "tmp"

    # store --------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise OSError unless the root is a writable directory (created if missing)."""
        self._root.mkdir(parents=True, exist_ok=True)
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise OSError(f"blob root {self._root} is not writable")

    def new_tenant_id(self, project: str) -> str:
        """A random id: every tenant lives under the same root."""
        del project  # NOTE: the filesystem keeps no per-project placement
        return uuid.uuid4().hex

    def create_tenant(self, tenant: str) -> None:
        tenant_dir = self._tenant_dir(tenant)
        for sub in ("blobs", "uploads"):
            (tenant_dir / sub).mkdir(parents=True, exist_ok=True)

    def delete_tenant(self, tenant: str) -> None:
        _remove_tree(self._tenant_dir(tenant))

    # uploads ------------------------------------------------------------------------
    def start_upload(self, tenant: str, upload_id: str) -> None:
        upload_dir = self._upload_dir(tenant, upload_id)
        upload_dir.mkdir(parents=True, exist_ok=True)
        (upload_dir / "data").touch(exist_ok=True)

    def upload_writer(self, tenant: str, upload_id: str, offset: int) -> FilesystemUploadWriter:
        return FilesystemUploadWriter(self._upload_dir(tenant, upload_id) / "data", offset)

    def upload_file(self, tenant: str, upload_id: str) -> str | None:
        """The upload's ``data`` file: writers append to it unbuffered."""
        return str(self._upload_dir(tenant, upload_id) / "data")

    def read_upload(self, tenant: str, upload_id: str, size: int | None = None) -> Iterator[bytes]:
        try:
            file = (self._upload_dir(tenant, upload_id) / "data").open("rb")
        except FileNotFoundError:
            raise UploadNotFoundError(upload_id) from None
        return _read_chunks(file, size)

    def finish_upload(
        self, tenant: str, upload_id: str, digest: Digest, size: int | None = None
    ) -> None:
        blob = self._blob_path(tenant, digest)
        data = self._upload_dir(tenant, upload_id) / "data"
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            try:
                if size is not None:
                    os.truncate(data, size)
                data.replace(blob)
            except FileNotFoundError:
                if not blob.exists():
                    raise UploadNotFoundError(upload_id) from None
        self.delete_upload(tenant, upload_id)

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        _remove_tree(self._upload_dir(tenant, upload_id))

    def reap_incomplete(self, older_than_seconds: int) -> int:
        """Remove ``tmp`` files that a crashed ``put_blob``/``copy_blob`` left behind.

        Uploads themselves are reaped by the metadata database's reaper through
        :meth:`delete_upload`.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for tmp in self._root.glob("tenants/*/tmp/*.tmp"):
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # blobs --------------------------------------------------------------------------
    def stat_blob(self, tenant: str, digest: Digest) -> int | None:
        try:
            return self._blob_path(tenant, digest).stat().st_size
        except FileNotFoundError:
            return None

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        if start < 0:
            raise ValueError("start must not be negative")
        try:
            file = self._blob_path(tenant, digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None
        size = os.fstat(file.fileno()).st_size
        last = size - 1 if end is None else min(end, size - 1)
        file.seek(start)
        return _read_chunks(file, max(0, last - start + 1))

    def blob_file(self, tenant: str, digest: Digest) -> str | None:
        """The blob's path, or ``None`` when the blob does not exist."""
        path = self._blob_path(tenant, digest)
        return str(path) if path.is_file() else None

    @property
    def redirects_pulls(self) -> bool:
        """Never: a blob here has no URL of its own."""
        return False

    def blob_location(self, tenant: str, digest: Digest) -> BlobLocation | None:
        """Always ``None``: there is no URL to redirect to."""
        self._blob_path(tenant, digest)  # validates
        return None

    def put_blob(self, tenant: str, digest: Digest, data: bytes) -> None:
        self._install(tenant, digest, lambda tmp: tmp.write_bytes(data))

    def copy_blob(self, source_tenant: str, target_tenant: str, digest: Digest) -> None:
        source = self._blob_path(source_tenant, digest)
        check_tenant(target_tenant)
        if not source.is_file():
            raise BlobNotFoundError(str(digest))
        try:
            self._install(target_tenant, digest, lambda tmp: shutil.copyfile(source, tmp))
        except FileNotFoundError:
            if not source.is_file():
                raise BlobNotFoundError(str(digest)) from None
            raise

    def delete_blob(self, tenant: str, digest: Digest) -> None:
        self._blob_path(tenant, digest).unlink(missing_ok=True)

    def delete_blobs(self, tenant: str, digests: Sequence[Digest]) -> dict[Digest, str]:
        """Unlink the blobs, several at a time; one that cannot be unlinked is reported.

        An unlink waits on the disk (the freed blocks), not on the CPU, so they overlap:
        on a virtual disk 32 at a time took 7,000 a second against 500 one by one.
        """
        paths = [(digest, self._blob_path(tenant, digest)) for digest in digests]
        if len(paths) <= 1:
            outcomes = [_unlink(path) for _, path in paths]
        else:
            outcomes = list(_UNLINKERS.map(_unlink, (path for _, path in paths)))
        return {
            digest: reason
            for (digest, _), reason in zip(paths, outcomes, strict=True)
            if reason is not None
        }

    def list_blobs(self, tenant: str) -> Iterator[Digest]:
        return _walk_blobs(self._tenant_dir(tenant) / "blobs")

    def _install(self, tenant: str, digest: Digest, fill: Callable[[Path], object]) -> None:
        """Write a blob through a temp file and rename it into place, unless it exists."""
        blob = self._blob_path(tenant, digest)
        if blob.exists():
            return
        tmp_dir = self._tmp_dir(tenant)
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
        try:
            fill(tmp)
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(blob)
        finally:
            tmp.unlink(missing_ok=True)


def _read_chunks(file: BinaryIO, limit: int | None) -> Iterator[bytes]:
    """Yield ``file``'s bytes from its position in 1 MiB reads, then close it."""
    with file:
        remaining = limit
        while remaining is None or remaining > 0:
            chunk = file.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _walk_blobs(blobs_dir: Path) -> Iterator[Digest]:
    if not blobs_dir.is_dir():
        return
    for alg_dir in sorted(blobs_dir.iterdir()):
        for fan_dir in sorted(alg_dir.iterdir()) if alg_dir.is_dir() else ():
            for blob in sorted(fan_dir.iterdir()) if fan_dir.is_dir() else ():
                digest = parse_blob_name(alg_dir.name, blob.name)
                if digest is not None and blob.name[:2] == fan_dir.name:
                    yield digest


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return


def _unlink(path: Path) -> str | None:
    """Remove ``path`` (missing is fine); why it could not be removed, else ``None``."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
