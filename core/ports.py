"""The ports the domain is written against; ``storage`` provides the adapters.

Blob stores are tenant-aware: every call names the tenant (a project's storage id) and
the store keeps each tenant's objects under that tenant's own prefix or bucket. Content
is never shared across tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from core.control_ports import ControlSession
from core.digests import Digest
from core.records import (
    BlobRecord,
    ManifestRecord,
    NewManifest,
    ProjectRecord,
    RepositoryRecord,
    StoredRef,
    UploadRecord,
    UserRecord,
)


class BlobNotFoundError(Exception):
    """The object does not exist in the store."""


class UploadNotFoundError(Exception):
    """The upload's data does not exist in the store."""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a client may fetch a blob directly (presigned URL), if the store offers one."""

    url: str


class UploadWriter(Protocol):
    """Appends one request's bytes to an upload; nothing is durable before :meth:`commit`."""

    def write(self, data: bytes) -> None:
        """Append ``data``; may block on I/O (call it from a worker thread)."""

    def commit(self) -> int:
        """Make the written bytes durable and return the upload's new total size."""

    def abort(self) -> None:
        """Discard what this writer wrote; the upload keeps its previous size."""


class BlobStore(Protocol):
    """Storage of blob payloads and in-progress uploads, isolated per tenant.

    Consistency contract:
    - ``finish_upload`` is idempotent and atomic from a reader's view: after it returns,
      the blob is readable under its digest with the upload's exact bytes; a blob that
      already existed is left as it was (same digest, same bytes).
    - The store never decides what is live: the metadata database does. Methods here
      are safe to retry.
    - All methods block; async callers run them in worker threads.
    """

    def ping(self) -> None:
        """Raise if the store is unreachable."""

    def new_tenant_id(self, project: str) -> str:
        """A fresh tenant id (the project's storage id) for a new project ``project``.

        The id is what every other method takes as ``tenant``. A store may encode in it
        where the project's objects live, e.g. which bucket and credentials serve them.
        """

    def create_tenant(self, tenant: str) -> None:
        """Prepare storage for a tenant (a bucket, when each tenant has its own)."""

    def delete_tenant(self, tenant: str) -> None:
        """Remove every object and upload of a tenant."""

    # uploads
    def start_upload(self, tenant: str, upload_id: str) -> None:
        """Create an empty upload."""

    def upload_writer(self, tenant: str, upload_id: str, offset: int) -> UploadWriter:
        """Open a writer appending at ``offset``, the upload's durable size.

        Bytes beyond ``offset`` left by an interrupted request are discarded.
        """

    def read_upload(self, tenant: str, upload_id: str, size: int | None = None) -> Iterator[bytes]:
        """Stream the upload's bytes (used to hash it on completion).

        With ``size`` (the durable size the metadata records), only the first ``size``
        bytes are read: a chunk written but never recorded is not part of the upload.
        """

    def finish_upload(
        self, tenant: str, upload_id: str, digest: Digest, size: int | None = None
    ) -> None:
        """Move the upload's bytes (the first ``size``) to blob ``digest``; drop the upload."""

    def delete_upload(self, tenant: str, upload_id: str) -> None:
        """Remove an upload's data; a missing upload is not an error."""

    def reap_incomplete(self, older_than_seconds: int) -> int:
        """Remove storage-level leftovers (e.g. S3 multipart uploads) older than the age.

        Returns how many were removed.
        """

    # blobs
    def stat_blob(self, tenant: str, digest: Digest) -> int | None:
        """Return the blob's size, or ``None`` if it does not exist."""

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """Stream bytes ``start`` to ``end`` (inclusive) of a blob; raise BlobNotFoundError."""

    def blob_file(self, tenant: str, digest: Digest) -> str | None:
        """A local file path holding the blob, for zero-copy serving; ``None`` if not local."""

    def blob_location(self, tenant: str, digest: Digest) -> BlobLocation | None:
        """A presigned URL for the blob when redirects are enabled, else ``None``."""

    def put_blob(self, tenant: str, digest: Digest, data: bytes) -> None:
        """Store a small blob whose digest the caller has verified."""

    def copy_blob(self, source_tenant: str, target_tenant: str, digest: Digest) -> None:
        """Copy a blob between tenants server-side; raise BlobNotFoundError."""

    def delete_blob(self, tenant: str, digest: Digest) -> None:
        """Remove a blob; a missing blob is not an error."""

    def list_blobs(self, tenant: str) -> Iterator[Digest]:
        """Every blob a tenant holds (for sweeps and tests)."""


class MetadataSession(ControlSession, Protocol):
    """One database transaction over the registry's metadata.

    Writes become visible to others only on :meth:`commit`; leaving the session
    without committing rolls everything back. Inserts that may race with an
    identical concurrent insert are idempotent (the existing row wins).
    """

    def commit(self) -> None: ...

    # projects
    def project(self, name: str) -> ProjectRecord | None: ...
    def add_project(self, name: str, public: bool, storage_id: str) -> ProjectRecord | None:
        """Insert a project; ``None`` if the name is taken."""

    def delete_project(self, project_id: int) -> None: ...
    def project_storage_id(self, project_id: int) -> str | None: ...
    def projects(self, last: str | None, limit: int, public_only: bool) -> list[ProjectRecord]: ...

    # repositories
    def repository(self, name: str) -> RepositoryRecord | None: ...
    def ensure_repository(self, project_id: int, name: str) -> RepositoryRecord: ...
    def repositories(self, last: str | None, limit: int, public_only: bool) -> list[str]: ...

    # blobs
    def linked_blob(self, repository_id: int, digest: str) -> BlobRecord | None: ...
    def project_blob(self, project_id: int, digest: str) -> BlobRecord | None: ...
    def add_blob(self, project_id: int, digest: str, size: int) -> BlobRecord: ...
    def link_blob(self, repository_id: int, blob_id: int) -> None: ...
    def unlink_blob(self, repository_id: int, digest: str) -> bool: ...
    def linked_blobs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        """The blobs of ``digests`` linked in the repository (id and size), one statement."""

    # manifests and tags
    def manifest(self, repository_id: int, digest: str) -> ManifestRecord | None: ...
    def named_manifest(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """The repository ``name`` and its manifest by ``digest`` (else by ``tag``) at once.

        ``None`` when the repository does not exist; the manifest is ``None`` when the
        repository holds no such manifest or tag. One statement, so both come from the
        same snapshot.
        """

    def manifest_ids(self, repository_id: int, digests: list[str]) -> dict[str, int]: ...
    def manifest_refs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        """The manifests of ``digests`` in the repository (id and size), one statement."""

    def add_manifest(self, repository_id: int, manifest: NewManifest) -> int:
        """Store a manifest and its references; return its id (existing id if present)."""

    def set_tag(self, repository_id: int, tag: str, manifest_id: int) -> None: ...
    def delete_tag(self, repository_id: int, tag: str) -> bool: ...
    def delete_manifest(self, repository_id: int, digest: str) -> bool: ...
    def tags(self, repository_id: int, last: str | None, limit: int) -> list[str]: ...
    def referrers(
        self, repository_id: int, digest: str, artifact_type: str | None
    ) -> list[ManifestRecord]: ...

    # uploads
    def add_upload(self, upload: UploadRecord) -> None: ...
    def upload(self, upload_id: str) -> UploadRecord | None: ...
    def advance_upload(
        self, upload_id: str, old_offset: int, new_offset: int, expires_at: datetime
    ) -> bool:
        """Move the durable offset (and expiry) if the offset still equals ``old_offset``."""

    def delete_upload(self, upload_id: str) -> None: ...
    def count_uploads(self, project_id: int) -> int: ...
    def expired_uploads(self, now: datetime, limit: int) -> list[UploadRecord]: ...

    # users and keys
    def user(self, username: str) -> UserRecord | None: ...
    def upsert_user(self, username: str, password_hash: str, is_admin: bool) -> None: ...
    def replace_password_hash(self, username: str, old_hash: str, new_hash: str) -> bool:
        """Store ``new_hash`` if the user's hash is still ``old_hash`` (false otherwise)."""

    def signing_keys(self) -> list[tuple[str, str, datetime]]: ...
    def add_signing_key(self, kid: str, private_pem: str) -> None: ...


_T = TypeVar("_T")


class Metadata(Protocol):
    """Opens metadata transactions."""

    def read(self) -> AbstractContextManager[MetadataSession]:
        """A read-mostly transaction (never blocks on writers)."""

    def write(self) -> AbstractContextManager[MetadataSession]:
        """A write transaction; concurrent writers queue."""

    def write_grouped(self, work: Callable[[MetadataSession], _T]) -> _T:
        """Run ``work`` in a write transaction that concurrent callers may share.

        For small, frequent writes (a manifest push): the database may run the work of
        several callers in one transaction and commit once. ``work`` must not commit,
        may run on another thread and may run more than once (only the writes of one run
        are kept), so it must have no effects outside its session. If it raises, nothing
        it wrote is stored and the exception reaches this caller only; its result is
        returned only once its writes are committed, as durable as after :meth:`write`.
        """

    def ping(self) -> None:
        """Raise if the database is unreachable."""


class ReadWouldWait(Exception):  # noqa: N818 - names the condition, like TimeoutError
    """A read that must not wait found the database busy (or cannot run without waiting)."""


class NowaitReads(Protocol):
    """Reads that never wait, for callers on an event loop thread."""

    def repository_nowait(self, name: str) -> RepositoryRecord | None:
        """:meth:`MetadataSession.repository`, as one statement that fails instead of waiting.

        Raises:
            ReadWouldWait: As for :meth:`named_manifest_nowait`.
        """
        ...

    def named_manifest_nowait(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """:meth:`MetadataSession.named_manifest`, as one statement that fails instead of waiting.

        Offered only where reads are local and never wait for writers (SQLite in WAL
        mode); the statement sees one committed state, like a :meth:`Metadata.read`.

        Raises:
            ReadWouldWait: A lock or a busy connection pool would make it wait; run the
                read with :meth:`Metadata.read` on a worker thread instead.
        """
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...
