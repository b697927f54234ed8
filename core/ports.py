"""The ports the domain is written against; ``storage`` provides the adapters.

Blob stores are tenant-aware: every call names the tenant (a project's storage id) and
the store keeps each tenant's objects under that tenant's own prefix or bucket. Content
is never shared across tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from core.control_ports import (
    CollectorRepository,
    OutboxRepository,
    PolicyRepository,
    ReviewQueueRepository,
    RunRepository,
)
from core.digests import Digest
from core.event_batches import EventQueueSession
from core.identity_ports import (
    IssuerRepository,
    LoginRepository,
    MemberRepository,
    RobotRepository,
    TokenRepository,
    UserRepository,
)
from core.key_rotation import StoredKey
from core.records import (
    BlobRecord,
    ManifestRecord,
    NewManifest,
    ProjectRecord,
    PushLookup,
    RepositoryRecord,
    StoredRef,
    UploadRecord,
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

    def upload_file(self, tenant: str, upload_id: str) -> str | None:
        """A local file holding the upload's bytes as they are written; ``None`` if not local.

        Bytes a writer appended are readable in the file when ``write`` returns (before
        ``commit``); ``finish_upload`` moves the same file to the blob, so a handle opened
        on it keeps reading the upload's bytes after the upload is finished or dropped.
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

    @property
    def redirects_pulls(self) -> bool:
        """Whether :meth:`blob_location` may return a URL; if not, it need not be asked."""

    def blob_location(self, tenant: str, digest: Digest) -> BlobLocation | None:
        """A presigned URL for the blob when redirects are enabled, else ``None``."""

    def put_blob(self, tenant: str, digest: Digest, data: bytes) -> None:
        """Store a small blob whose digest the caller has verified."""

    def copy_blob(self, source_tenant: str, target_tenant: str, digest: Digest) -> None:
        """Copy a blob between tenants server-side; raise BlobNotFoundError."""

    def delete_blob(self, tenant: str, digest: Digest) -> None:
        """Remove a blob; a missing blob is not an error."""

    def delete_blobs(self, tenant: str, digests: Sequence[Digest]) -> dict[Digest, str]:
        """Remove many blobs, in as few storage requests as the store allows.

        A missing blob is not an error. A request that fails as a whole raises; the
        blobs it could not delete one by one are returned, each with why.

        Returns:
            The digests left in place, each with the store's reason (empty: all gone).
        """

    def list_blobs(self, tenant: str) -> Iterator[Digest]:
        """Every blob a tenant holds (for sweeps and tests)."""


class ProjectRepository(Protocol):
    """Projects: the registry's tenants."""

    def get(self, name: str) -> ProjectRecord | None: ...
    def add(self, name: str, public: bool, storage_id: str) -> ProjectRecord | None:
        """Insert a project; ``None`` if the name is taken."""

    def delete(self, project_id: int) -> None:
        """Remove the project with its repositories, blobs, manifests, tags and uploads."""

    def storage_id(self, project_id: int) -> str | None: ...
    def page(self, last: str | None, limit: int, public_only: bool) -> list[ProjectRecord]: ...
    def set_public(self, name: str, public: bool) -> bool: ...
    def ids(self, names: list[str]) -> set[int]: ...
    def lock(self, project_id: int) -> None:
        """Serialise quota checks of one project until the transaction ends."""


class RepositoryRepository(Protocol):
    """Repositories of a project, read with their project's storage id."""

    def get(self, name: str) -> RepositoryRecord | None: ...
    def ensure(self, project_id: int, name: str) -> RepositoryRecord: ...
    def catalog(self, last: str | None, limit: int, public_only: bool) -> list[str]: ...
    def names(self, project_ids: set[int] | None, last: str | None, limit: int) -> list[str]:
        """Repository names of the given projects (all when ``None``), sorted, paginated."""

    def of_project(self, project_id: int) -> list[RepositoryRecord]: ...


class BlobRepository(Protocol):
    """Blobs of a project and their links into its repositories."""

    def linked(self, repository_id: int, digest: str) -> BlobRecord | None: ...
    def in_project(self, project_id: int, digest: str) -> BlobRecord | None: ...
    def add(self, project_id: int, digest: str, size: int) -> BlobRecord: ...
    def link(self, repository_id: int, blob_id: int) -> None: ...
    def unlink(self, repository_id: int, digest: str) -> bool: ...


class ManifestRepository(Protocol):
    """Manifests of a repository and what they reference."""

    def get(self, repository_id: int, digest: str) -> ManifestRecord | None: ...
    def named(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """The repository ``name`` and its manifest by ``digest`` (else by ``tag``) at once.

        ``None`` when the repository does not exist; the manifest is ``None`` when the
        repository holds no such manifest or tag. One statement, so both come from the
        same snapshot.
        """

    def ids(self, repository_id: int, digests: list[str]) -> dict[str, int]: ...
    def refs(self, repository_id: int, digests: list[str]) -> dict[str, StoredRef]:
        """The manifests of ``digests`` in the repository (id and size), one statement."""

    def push_lookup(
        self,
        repository_id: int,
        blob_digests: list[str],
        manifest_digests: list[str],
        tag: str | None,
    ) -> PushLookup:
        """What a push into the repository finds stored, in one statement.

        The blobs of ``blob_digests`` linked in the repository and the manifests of
        ``manifest_digests`` stored in it (id and size each), and the digest ``tag``
        names (``None`` without a tag or when it names nothing); one snapshot.
        """

    def add(self, repository_id: int, manifest: NewManifest) -> int:
        """Store a manifest and its references; return its id (existing id if present)."""

    def delete(self, repository_id: int, digest: str) -> bool:
        """Remove the manifest, its tags and its reference rows."""

    def referrers(
        self, repository_id: int, digest: str, artifact_type: str | None
    ) -> list[ManifestRecord]: ...
    def references(self, repository_id: int, digest: str) -> tuple[list[str], list[str]]:
        """The blob digests and child manifest digests a stored manifest references."""


class TagRepository(Protocol):
    """Tags of a repository: a name pointing at one manifest."""

    def set(self, repository_id: int, tag: str, manifest_id: int) -> None: ...
    def delete(self, repository_id: int, tag: str) -> bool: ...
    def page(self, repository_id: int, last: str | None, limit: int) -> list[str]: ...
    def target(self, repository_id: int, tag: str) -> str | None:
        """The digest a tag points at, if the tag exists."""

    def named_targets(self, repository: str, tags: list[str]) -> dict[str, str]:
        """The digest each of ``tags`` points at in the repository named ``repository``.

        Tags that do not exist there (or a repository that does not exist) are left out.
        One statement, so every answer comes from the same snapshot.
        """

    def of_manifest(self, repository_id: int, digest: str) -> list[str]:
        """The tags pointing at a manifest."""


class UploadRepository(Protocol):
    """Blob uploads in progress."""

    def add(self, upload: UploadRecord) -> None: ...
    def get(self, upload_id: str) -> UploadRecord | None: ...
    def advance(
        self,
        upload_id: str,
        old_offset: int,
        new_offset: int,
        expires_at: datetime,
        hash_state: bytes | None = None,
    ) -> bool:
        """Move the durable offset (and expiry) if the offset still equals ``old_offset``.

        The same statement saves ``hash_state`` as the running hash after ``new_offset``
        bytes (``None`` clears it), so a saved state and the offset change together.
        """

    def delete(self, upload_id: str) -> None: ...
    def count(self, project_id: int) -> int: ...
    def expired(self, now: datetime, limit: int) -> list[UploadRecord]: ...


class SigningKeyRepository(Protocol):
    """The installation's token signing keys."""

    def all(self) -> list[tuple[str, str, datetime]]:
        """``(kid, private PEM, created at)`` of every key, oldest first."""

    def stored(self) -> list[StoredKey]: ...
    def add(self, kid: str, private_pem: str) -> bool:
        """Insert a key; ``False`` when the ``kid`` exists (the stored key stays)."""

    def remove(self, kids: Sequence[str]) -> int: ...


class UnitOfWork(Protocol):
    """One database transaction over the registry's metadata: a repository per aggregate.

    Every repository works on the same transaction, so a service changes several
    aggregates atomically.

    Writes become visible to others only on :meth:`commit`; leaving the unit of work
    without committing rolls back what every repository wrote. Inserts that may race
    with an identical concurrent insert are idempotent (the existing row wins).
    """

    def commit(self) -> None: ...

    # the data plane
    @property
    def projects(self) -> ProjectRepository: ...
    @property
    def repositories(self) -> RepositoryRepository: ...
    @property
    def blobs(self) -> BlobRepository: ...
    @property
    def manifests(self) -> ManifestRepository: ...
    @property
    def tags(self) -> TagRepository: ...
    @property
    def uploads(self) -> UploadRepository: ...

    # identity
    @property
    def users(self) -> UserRepository: ...
    @property
    def signing_keys(self) -> SigningKeyRepository: ...
    @property
    def members(self) -> MemberRepository: ...
    @property
    def robots(self) -> RobotRepository: ...
    @property
    def tokens(self) -> TokenRepository: ...
    @property
    def issuers(self) -> IssuerRepository: ...
    @property
    def logins(self) -> LoginRepository: ...

    # the control plane
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def event_queues(self) -> EventQueueSession: ...
    @property
    def reviews(self) -> ReviewQueueRepository: ...
    @property
    def collector(self) -> CollectorRepository: ...
    @property
    def policies(self) -> PolicyRepository: ...
    @property
    def runs(self) -> RunRepository: ...


_T = TypeVar("_T")


class Metadata(Protocol):
    """Opens units of work (metadata transactions)."""

    def read(self) -> AbstractContextManager[UnitOfWork]:
        """A read-mostly unit of work (never blocks on writers)."""

    def write(self) -> AbstractContextManager[UnitOfWork]:
        """A write unit of work; concurrent writers queue.

        On SQLite a writer takes the process's write lock first (``storage.db.engine``).
        """

    def write_grouped(self, work: Callable[[UnitOfWork], _T]) -> _T:
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
        """:meth:`RepositoryRepository.get`, as one statement that fails instead of waiting.

        Raises:
            ReadWouldWait: As for :meth:`named_manifest_nowait`.
        """
        ...

    def named_blob_nowait(
        self, name: str, digest: str
    ) -> tuple[RepositoryRecord, BlobRecord | None] | None:
        """The repository ``name`` and, if linked to it, its project's blob ``digest``.

        ``None``: no such repository. A blob linked from another project is reported as
        not linked; :meth:`BlobRepository.linked` finds it.

        Raises:
            ReadWouldWait: As for :meth:`named_manifest_nowait`.
        """
        ...

    def named_manifest_nowait(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """:meth:`ManifestRepository.named`, as one statement that fails instead of waiting.

        Offered only where reads are local and never wait for writers (SQLite in WAL
        mode); the statement sees one committed state, like a :meth:`Metadata.read`.

        Raises:
            ReadWouldWait: A lock or a busy connection pool would make it wait; run the
                read with :meth:`Metadata.read` on a worker thread instead.
        """
        ...


class AsyncReads(Protocol):
    """Reads awaited on the caller's event loop (a database that answers over the network)."""

    async def named_manifest_async(
        self, name: str, digest: str | None, tag: str | None
    ) -> tuple[RepositoryRecord, ManifestRecord | None] | None:
        """:meth:`ManifestRepository.named`, awaited on the running event loop.

        One statement in its own read transaction: it sees one committed state, like a
        :meth:`Metadata.read`. Any exception means nothing was answered; the caller
        reads through :meth:`Metadata.read` instead, which reports the failure itself.
        """
        ...

    async def close_async_reads(self) -> None:
        """Close the running event loop's connections (at the end of its serving)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...
