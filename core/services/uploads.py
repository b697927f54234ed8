"""Blob uploads: sessions, chunks, completion, mounts and reaping.

An upload's durable state is its database row (``offset``, and the running hash saved
with it) plus its data in the blob store; no process memory is needed to continue it, so
consecutive chunks may land on different API processes, and none of them re-reads the
bytes already received (``core.services.upload_hashes``). A blob row is written only
after its object exists, so a row never points at missing data; object and rows are
written under the blob's GC review row lock, so GC never takes a blob from a completing
upload or mount.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from core import events
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.ports import (
    BlobNotFoundError,
    BlobStore,
    Clock,
    Metadata,
    UnitOfWork,
    UploadWriter,
)
from core.records import BlobRecord, PushTarget, RepositoryRecord, UploadRecord
from core.resumable_hash import ResumableHasher, ResumableHashing
from core.services.changes import ChangeRecorder
from core.services.quota import QuotaExceededError, reserve
from core.services.upload_hashes import RunningHashes
from core.settings import LimitSettings

#: Batches at least this big are hashed in :data:`_HASH_POOL` while being written.
_PARALLEL_HASH_MIN = 256 * 1024
_HASH_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="upload-hash")


def _upload_unknown() -> RegistryError:
    return RegistryError(OCIErrorCode.BLOB_UPLOAD_UNKNOWN)


class ChunkWriter:
    """Appends one request's bytes to an upload, hashing as it writes.

    ``write`` blocks on storage I/O; call it from a worker thread.
    """

    def __init__(
        self,
        upload: UploadRecord,
        writer: UploadWriter,
        hasher: ResumableHasher | None,
        limit: int,
    ) -> None:
        self.upload = upload
        self._writer = writer
        self.hasher = hasher
        self.written = 0
        #: Whether any ``write`` began (the hasher may then hold bytes that were not stored).
        self.touched = False
        self._limit = limit

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.touched = True
        if self.upload.offset + self.written + len(data) > self._limit:
            raise RegistryError(
                OCIErrorCode.SIZE_INVALID, "blob exceeds the registry's size limit", status=413
            )
        hasher = self.hasher
        if hasher is None or len(data) < _PARALLEL_HASH_MIN:
            self._writer.write(data)
            if hasher is not None:
                hasher.update(data)
        else:
            # NOTE: hashing and the storage write both release the GIL, so they run side
            # by side; the hash of this batch completes before the next batch starts.
            hashed = _HASH_POOL.submit(hasher.update, data)
            try:
                self._writer.write(data)
            finally:
                hashed.result()
        self.written += len(data)

    def commit(self) -> int:
        return self._writer.commit()

    def abort(self) -> None:
        self._writer.abort()


class UploadService:
    """The upload state machine of the OCI distribution spec."""

    def __init__(
        self,
        metadata: Metadata,
        store: BlobStore,
        clock: Clock,
        limits: LimitSettings,
        changes: ChangeRecorder,
        hashing: ResumableHashing,
    ) -> None:
        self._metadata = metadata
        self._changes = changes
        self._store = store
        self._clock = clock
        self._limits = limits
        #: The uploads' running hashes, saved with each chunk when ``hashing`` can.
        self.hashes = RunningHashes(hashing)

    def start(self, repository: PushTarget) -> UploadRecord:
        """Open a new upload session for ``repository``.

        The session names its repository; it does not create it (a repository exists
        once it holds a linked blob or a manifest). Sessions count against the project's
        ``uploads_per_project``.
        """
        now = self._clock.now()
        upload = UploadRecord(
            id=str(uuid.uuid4()),
            project_id=repository.project_id,
            repository=repository.name,
            offset=0,
            created_at=now,
            expires_at=now + timedelta(seconds=self._limits.upload_ttl_seconds),
        )
        with self._metadata.write() as session:
            if session.uploads.count(repository.project_id) >= self._limits.uploads_per_project:
                raise RegistryError(
                    OCIErrorCode.TOOMANYREQUESTS, "too many open upload sessions"
                ).with_headers(**{"Retry-After": "60"})
            session.uploads.add(upload)
            self._store.start_upload(repository.storage_id, upload.id)
            session.commit()
        return upload

    def get(self, repository: PushTarget, upload_id: str) -> UploadRecord:
        with self._metadata.read() as session:
            upload = session.uploads.get(upload_id)
        if upload is None or upload.repository != repository.name:
            raise _upload_unknown()
        if upload.expires_at <= self._clock.now():
            raise _upload_unknown()
        return upload

    def open_chunk(self, repository: PushTarget, upload_id: str, start: int | None) -> ChunkWriter:
        """Prepare to append at ``start`` (the ``Content-Range`` start, if given).

        Raises ``416`` with the current ``Range`` when ``start`` is not the durable offset.
        """
        upload = self.get(repository, upload_id)
        if start is not None and start != upload.offset:
            raise RegistryError(
                OCIErrorCode.RANGE_INVALID, "chunk does not start at the upload's offset"
            ).with_headers(**range_headers(upload.offset))
        writer = self._store.upload_writer(repository.storage_id, upload.id, upload.offset)
        return ChunkWriter(upload, writer, self.hashes.take(upload), self._limits.blob_max_bytes)

    def local_file(self, repository: PushTarget, upload_id: str) -> str | None:
        """The local file the upload's bytes are written to, if the store has one.

        See ``BlobStore.upload_file``: a reader may follow the bytes a chunk writes there.
        """
        return self._store.upload_file(repository.storage_id, upload_id)

    def commit_chunk(self, chunk: ChunkWriter) -> UploadRecord:
        """Make a chunk durable and advance the session's offset, saving the running hash."""
        new_offset = chunk.commit()
        upload, hasher = chunk.upload, chunk.hasher
        state = None if hasher is None else hasher.export()
        expires_at = self._clock.now() + timedelta(seconds=self._limits.upload_ttl_seconds)
        with self._metadata.write() as session:
            if not session.uploads.advance(upload.id, upload.offset, new_offset, expires_at, state):
                raise RegistryError(
                    OCIErrorCode.BLOB_UPLOAD_INVALID, "upload was changed concurrently"
                )
            session.commit()
        if hasher is not None:
            self.hashes.keep(upload.id, new_offset, hasher)
        return UploadRecord(
            upload.id,
            upload.project_id,
            upload.repository,
            new_offset,
            upload.created_at,
            expires_at,
            None if state is None else new_offset,
            state,
        )

    def abort_chunk(self, chunk: ChunkWriter) -> None:
        """Drop a chunk's bytes; a chunk that never wrote hands its running hash back.

        The common case is a completing ``PUT`` without a body after ``PATCH``es: it
        opens an empty chunk, and the hash kept by the last ``PATCH`` must survive it, or
        completing would re-read and re-hash the whole upload.
        """
        chunk.abort()
        if not chunk.touched and chunk.hasher is not None:
            self.hashes.keep(chunk.upload.id, chunk.upload.offset, chunk.hasher)

    def complete(self, repository: PushTarget, upload_id: str, data: bytes, digest: Digest) -> int:
        """Append ``data``, the rest of the blob, and complete the upload as ``digest``.

        :meth:`open_chunk`, :meth:`commit_chunk` and :meth:`finish` in one, without
        saving the new offset in between: ``data`` is made durable in the upload's data,
        then the session's row goes with the blob's rows in :meth:`finish`'s transaction.
        A failure in between leaves the session at the offset its row still holds (what
        ``data`` added is cut off by the next append there); a digest mismatch removes
        the session as :meth:`finish` does. Returns the blob's size.
        """
        chunk = self.open_chunk(repository, upload_id, None)
        try:
            chunk.write(data)
            size = chunk.commit()
        except BaseException:
            self.abort_chunk(chunk)
            raise
        if chunk.hasher is not None:
            self.hashes.keep(upload_id, size, chunk.hasher)
        return self.finish(repository, replace(chunk.upload, offset=size), digest)

    def finish(self, repository: PushTarget, upload: UploadRecord, digest: Digest) -> int:
        """Complete ``upload`` as blob ``digest``; return the blob's size.

        The digest comes from the running hash when one covers the upload; when it
        disagrees with ``digest`` the bytes are re-read to be sure. A digest mismatch
        removes the session and its data (``DIGEST_INVALID``). Once the digest matches,
        a concurrent GC cannot make the upload fail: the blob's review row stays locked
        from the tombstone check until the blob's rows are written (``_place``).
        """
        read = partial(self._store.read_upload, repository.storage_id, upload.id, upload.offset)
        actual, running = self.hashes.digest(upload, digest.algorithm, read)
        if actual != digest and running:
            actual = self.hashes.rehash(digest.algorithm, read, "mismatch")
        if actual != digest:
            self.cancel(repository, upload.id)
            raise RegistryError(OCIErrorCode.DIGEST_INVALID).with_detail(
                {"expected": str(digest), "actual": str(actual)}
            )

        def put_in_place(session: UnitOfWork) -> None:
            self._store.finish_upload(repository.storage_id, upload.id, digest, upload.offset)
            # NOTE: the upload's data is consumed from here on; a blob the quota refuses
            # leaves its object to GC (its review row is armed in this transaction).
            session.uploads.delete(upload.id)

        self._place(repository, digest, upload.offset, events.BLOB_UPLOAD, put_in_place)
        return upload.offset

    def _place(
        self,
        target: PushTarget,
        digest: Digest,
        size: int,
        event: str,
        put_in_place: Callable[[UnitOfWork], None],
    ) -> BlobRecord:
        """Write a blob's object and its rows while holding its review row's lock.

        One write transaction: arm the blob's review (the upsert locks the row whether
        or not it existed, so concurrent pushes of one digest and the collector queue on
        it), settle a pending GC deletion (a tombstone: GC decided the object goes and
        has not deleted it yet; it is deleted here), put the object in place, check the
        quota, then add the blob's rows, creating the repository's row if it has none
        (a repository exists once it holds a blob or a manifest). The collector decides
        and deletes only under the same lock (PostgreSQL: the row lock, which its
        ``SKIP LOCKED`` skips; SQLite: the database's write lock), so it sees either no
        object yet or the blob's rows: a complete upload never fails because of GC. The
        armed review lets GC collect the blob later if no manifest comes to reference it.

        When the quota refuses the blob, what ``put_in_place`` wrote to the session, the
        armed review and the ``quota.exceeded`` event are committed, and no repository row
        is created.
        """
        with self._metadata.write() as session:
            self._settle(session, target, str(digest), event)
            put_in_place(session)
            try:
                self._admit(session, target, digest, size)
            except RegistryError as refused:
                if isinstance(refused, QuotaExceededError):
                    self._changes.quota_exceeded(session, target, refused)
                session.commit()
                raise
            repository = session.repositories.ensure(target.project_id, target.name)
            blob = session.blobs.add(target.project_id, str(digest), size)
            session.blobs.link(repository.id, blob.id)
            session.commit()
        return blob

    def _settle(self, session: UnitOfWork, target: PushTarget, digest: str, event: str) -> None:
        """Lock and arm the digest's review row, finishing a pending GC deletion first."""
        self._arm(session, target, digest, event)
        if session.reviews.blob_tombstoned(target.project_id, digest):
            self._store.delete_blob(target.storage_id, Digest.parse(digest))
            session.collector.drop_blob_review(target.project_id, digest)
            self._arm(session, target, digest, event)

    def _arm(self, session: UnitOfWork, target: PushTarget, digest: str, event: str) -> None:
        """Queue (or postpone) the blob's GC review; the upsert locks its row."""
        review_after = self._changes.review_after()
        session.reviews.enqueue_blob_review(
            target.project_id, target.storage_id, digest, event, review_after
        )

    def _admit(self, session: UnitOfWork, target: PushTarget, digest: Digest, size: int) -> None:
        """Check the object is in place and the project's quota takes a new blob."""
        if self._store.stat_blob(target.storage_id, digest) is None:
            raise RegistryError(
                OCIErrorCode.BLOB_UPLOAD_INVALID, "the blob's data is missing; retry the upload"
            )
        if session.policies.linked_blob_ids_in_project(target.project_id, [str(digest)]) == []:
            reserve(
                session,
                target,
                add_bytes=size,
                add_artifacts=0,
                warning_ratio=self._changes.quota_warning_ratio,
            )

    def cancel(self, repository: PushTarget, upload_id: str) -> None:
        upload = self.get(repository, upload_id)
        with self._metadata.write() as session:
            session.uploads.delete(upload.id)
            session.commit()
        self._store.delete_upload(repository.storage_id, upload.id)
        self.hashes.forget(upload.id)

    def mount(
        self, target: PushTarget, digest: Digest, source: RepositoryRecord
    ) -> BlobRecord | None:
        """Make ``digest`` of ``source`` visible in ``target``; ``None`` if it is not there.

        The caller has checked it may pull ``source``. Inside one project this links the
        existing blob; across projects the object is copied server-side first, under
        the blob's review row lock like a completing upload (``_place``).
        """
        with self._metadata.read() as session:
            source_blob = session.blobs.linked(source.id, str(digest))
            own = session.blobs.in_project(target.project_id, str(digest))
        if source_blob is None:
            return None

        def copy(_session: UnitOfWork) -> None:
            if own is None and source.project_id != target.project_id:
                self._store.copy_blob(source.storage_id, target.storage_id, digest)

        try:
            return self._place(target, digest, source_blob.size, events.BLOB_MOUNT, copy)
        except (BlobNotFoundError, RegistryError):
            return None

    def reap_expired(self, now: datetime, limit: int = 500) -> int:
        """Remove sessions past their expiry with their data; return how many."""
        with self._metadata.read() as session:
            expired = session.uploads.expired(now, limit)
        tenants = self._tenants(expired)
        for upload in expired:
            with self._metadata.write() as session:
                session.uploads.delete(upload.id)
                session.commit()
            if upload.project_id in tenants:
                self._store.delete_upload(tenants[upload.project_id], upload.id)
        return len(expired)

    def _tenants(self, uploads: list[UploadRecord]) -> dict[int, str]:
        tenants: dict[int, str] = {}
        with self._metadata.read() as session:
            for upload in uploads:
                if upload.project_id not in tenants:
                    storage_id = session.projects.storage_id(upload.project_id)
                    if storage_id is not None:
                        tenants[upload.project_id] = storage_id
        return tenants


def range_headers(offset: int) -> dict[str, str]:
    """The ``Range`` header describing ``offset`` durable bytes (``0-0`` when empty)."""
    return {"Range": f"0-{max(offset - 1, 0)}"}
