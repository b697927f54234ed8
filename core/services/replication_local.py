"""This installation as the destination of a pull replication, written through its services.

A pull policy copies from a remote registry into this installation. The worker runs next
to the metadata database and the blob store (it collects garbage and promotes there), so
it writes what it copies in-process instead of sending every byte to its own ``/v2``
over HTTP: one process hashes and stores each blob once, and no API process receives it
a second time.

What a push through ``/v2`` goes through is kept, in the same services and the same
order, so the stored result and everything it sets off are the same:

- a project that is a proxy cache is refused with ``DENIED`` before anything is written
  (``core.proxy.push_refused``, the pipeline's request-start refusal);
- the project must exist unless ``auth.create_project_on_push``; blobs are appended and
  completed by ``UploadService`` (size limit, running hash, digest check, quota, the
  blob's GC review), manifests stored by ``ManifestService.put`` (references checked,
  tag immutability, quota, the push's events with ``replication`` as operator);
- an upload session is the database row a ``/v2`` session is, so a copy retried after
  its worker died continues from the offset the session holds (``upload_offset``);
- every blob stored, manifest stored and tag or manifest deleted is written to the audit
  log with ``replication`` as actor (``actor_kind`` ``replication``, ``auth_method``
  ``workflow``), and the log is flushed after each manifest, so a copied artifact is
  traceable to the replication identity even when the worker dies right after.

Refusals come back as the client's errors (``core.upstream_ports``) with the status and
OCI code ``/v2`` would have answered, so the copier decides the same way for either
side: ``404`` is "not there", a final status (``400``, ``403``, ``409``, ``413``, ...)
fails the task for good, anything else (storage full, the database away) is retried.

The manifest-stored hooks of the ``/v2`` pipeline do not run here: none is registered in
this process (the worker serves no requests); what follows a push (scans, signing,
webhooks, replication onwards) runs from the push's events, which are written.

Reads that leave this installation (manifests, blobs, referrers, the catalog) are not
this side's job: they go to ``reads``, the ``/v2`` client, so the pull gates apply to them.
"""

from __future__ import annotations

import asyncio
import errno
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol, TypeVar

from core.access import AuthMethod, Identity
from core.audit import AuditEvent
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
from core.ports import Clock, Metadata
from core.proxy import push_refused
from core.records import PushTarget, UploadRecord
from core.replication_copy import ReplicaRegistry
from core.services.manifests import ManifestService
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService
from core.upstream_ports import (
    BlobDownload,
    ManifestHead,
    UpstreamError,
    UpstreamManifest,
    UpstreamUnavailableError,
    refusal_kind,
)

#: Who replication's writes are recorded as (events' operator, the audit log's actor).
REPLICATION_SUBJECT: Final = "replication"
REPLICATION_IDENTITY: Final = Identity(
    subject=REPLICATION_SUBJECT, is_admin=True, method=AuthMethod.TOKEN
)
_TAG_PAGE: Final = 1000
#: Repositories whose write target is remembered (all are forgotten past this).
_TARGETS_MAX: Final = 4096
_T = TypeVar("_T")


class AuditSink(Protocol):
    """The audit log as a writer outside a request uses it (``core.services.audit_log``)."""

    def record(self, event: AuditEvent) -> None: ...
    def flush(self) -> None: ...


def upstream_error(refused: RegistryError, what: str) -> UpstreamError:
    """The client error a ``/v2`` answer of ``refused`` would have become."""
    message = f"{what}: {refused.code}: {refused.message}"
    return refusal_kind(refused.status)(message, status=refused.status, code=str(refused.code))


class LocalReplica:
    """``core.replication_copy.ReplicaRegistry`` over this installation's services.

    Args:
        is_proxy: Whether a project is a proxy cache now (``core.proxy.is_proxy_project``).
        create_project: ``auth.create_project_on_push``.
        reads: The ``/v2`` client, for the reads that leave this installation (called
            only when one is made).
        refresh_seconds: How long a repository's write target (its project, and whether
            that is a proxy cache) is reused (``proxy.refresh_seconds``: the pipeline's
            view of proxy projects is as old at most), so a copy's blobs do not each
            read it again.
    """

    #: ``UploadService`` checks every blob against its digest before it is stored.
    verifies_blob_digests = True

    def __init__(
        self,
        metadata: Metadata,
        repositories: RepositoryService,
        manifests: ManifestService,
        uploads: UploadService,
        audit: AuditSink,
        clock: Clock,
        *,
        is_proxy: Callable[[str], bool],
        create_project: bool,
        reads: Callable[[], ReplicaRegistry],
        refresh_seconds: float = 5.0,
    ) -> None:
        self._metadata = metadata
        self._repositories, self._manifests, self._uploads = repositories, manifests, uploads
        self._audit, self._clock = audit, clock
        self._is_proxy = is_proxy
        self._create = create_project
        self._reads = reads
        self._refresh = refresh_seconds
        #: Repository -> (read at, its push target; ``None``: a proxy project's).
        self._targets: dict[str, tuple[float, PushTarget | None]] = {}

    # -- calls into the services (blocking: on a worker thread) --

    async def _call(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return await asyncio.to_thread(call)
        except RegistryError as refused:
            raise upstream_error(refused, what) from refused
        except OSError as failed:
            if failed.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UpstreamUnavailableError(
                    f"{what}: this registry's storage is full", status=507
                ) from failed
            raise

    def _target(self, repository: str) -> PushTarget:
        """Where a write into ``repository`` goes; a proxy project is refused first."""
        now = time.monotonic()
        cached = self._targets.get(repository)
        if cached is None or now - cached[0] >= self._refresh:
            name = RepositoryName.parse(repository)
            found = None
            if not self._is_proxy(name.project):
                found = self._repositories.push_target(name, self._create)
            if len(self._targets) >= _TARGETS_MAX:
                self._targets.clear()
            cached = self._targets[repository] = (now, found)
        if cached[1] is None:
            raise push_refused(repository)
        return cached[1]

    def _record(self, action: str, resource: str, status: int = 201) -> None:
        self._audit.record(
            AuditEvent(
                time=self._clock.now(),
                request_id=uuid.uuid4().hex,
                actor=REPLICATION_SUBJECT,
                actor_kind=REPLICATION_SUBJECT,
                auth_method="workflow",
                action=action,
                resource=resource,
                project=resource.partition("/")[0],
                result="success",
                status=status,
                client="",
                user_agent="",
            )
        )

    # -- what the copier asks the destination --

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        def read() -> ManifestHead:
            record = self._manifests.read(
                RepositoryName.parse(repository), Reference.parse(reference)
            )
            return ManifestHead(record.digest, record.media_type, record.size)

        return await self._call(f"manifest {repository}:{reference}", read)

    async def head_blob(self, repository: str, digest: str) -> int:
        def read() -> int:
            name, parsed = str(RepositoryName.parse(repository)), str(Digest.parse(digest))
            with self._metadata.read() as session:
                found = session.repositories.get(name)
                blob = None if found is None else session.blobs.linked(found.id, parsed)
            if blob is None:
                raise RegistryError(OCIErrorCode.BLOB_UNKNOWN).with_detail({"digest": parsed})
            return blob.size

        return await self._call(f"blob {digest}", read)

    async def tags(self, repository: str) -> list[str]:
        def read() -> list[str]:
            found = self._repositories.find(RepositoryName.parse(repository))
            tags: list[str] = []
            while found is not None:
                page = self._manifests.tags(found, tags[-1] if tags else None, _TAG_PAGE)
                tags.extend(page)
                if len(page) < _TAG_PAGE:
                    break
            return tags

        return await self._call(f"tags of {repository}", read)

    async def put_manifest(
        self, repository: str, reference: str, media_type: str, payload: bytes
    ) -> str:
        def store() -> str:
            name = RepositoryName.parse(repository)
            parsed = Reference.parse(reference)
            self._target(repository)
            target = self._repositories.ensure(name, self._create)
            pushed = self._manifests.put(target, parsed, payload, media_type, REPLICATION_IDENTITY)
            self._record("push_manifest", f"{name}:{reference}")
            self._audit.flush()
            return str(pushed.digest)

        return await self._call(f"manifest {repository}:{reference}", store)

    async def delete_manifest(self, repository: str, reference: str) -> bool:
        def delete() -> bool:
            name = RepositoryName.parse(repository)
            found = self._repositories.find(name)
            if found is None:
                return False
            try:
                self._manifests.delete(found, Reference.parse(reference))
            except RegistryError as refused:
                if refused.code is OCIErrorCode.MANIFEST_UNKNOWN:
                    return False
                raise
            self._record("delete_manifest", f"{name}:{reference}", 202)
            self._audit.flush()
            return True

        return await self._call(f"manifest {repository}:{reference}", delete)

    async def mount_blob(self, repository: str, digest: str, source: str | None) -> str | None:
        def mount() -> str | None:
            target = self._target(repository)
            parsed = Digest.parse(digest)
            origin = self._repositories.find(RepositoryName.parse(source)) if source else None
            if origin is not None and self._uploads.mount(target, parsed, origin) is not None:
                self._record("push_blob", f"{target.name}:{digest}")
                return None
            return self._uploads.start(target).id

        return await self._call(f"blob upload to {repository}", mount)

    async def start_upload(self, repository: str) -> tuple[str, int]:
        def start() -> tuple[str, int]:
            return self._uploads.start(self._target(repository)).id, 0

        return await self._call(f"blob upload to {repository}", start)

    async def upload_offset(self, repository: str, location: str) -> int | None:
        def offset() -> int | None:
            try:
                return self._uploads.get(self._target(repository), location).offset
            except RegistryError as refused:
                if refused.code is OCIErrorCode.BLOB_UPLOAD_UNKNOWN:
                    return None
                raise

        return await self._call("upload status", offset)

    def _append(
        self, target: PushTarget, location: str, start: int | None, data: bytes
    ) -> UploadRecord:
        chunk = self._uploads.open_chunk(target, location, start)
        try:
            chunk.write(data)
        except BaseException:
            self._uploads.abort_chunk(chunk)
            raise
        return self._uploads.commit_chunk(chunk)

    async def upload_chunk(self, repository: str, location: str, start: int, data: bytes) -> str:
        def append() -> str:
            self._append(self._target(repository), location, start, data)
            return location

        return await self._call("blob chunk", append)

    async def finish_upload(
        self, repository: str, location: str, digest: str, data: bytes = b""
    ) -> None:
        def finish() -> None:
            target = self._target(repository)
            parsed = Digest.parse(digest)
            if data:
                self._uploads.complete(target, location, data, parsed)
            else:
                self._uploads.finish(target, self._uploads.get(target, location), parsed)
            self._record("push_blob", f"{target.name}:{digest}")

        await self._call(f"blob {digest}", finish)

    # -- reads that leave this installation: through ``/v2`` and its pull gates --

    async def get_manifest(
        self, repository: str, reference: str, max_bytes: int
    ) -> UpstreamManifest:
        return await self._reads().get_manifest(repository, reference, max_bytes)

    @asynccontextmanager
    async def _blob(self, repository: str, digest: str, start: int) -> AsyncIterator[BlobDownload]:
        async with self._reads().blob(repository, digest, start) as download:
            yield download

    def blob(
        self, repository: str, digest: str, start: int = 0
    ) -> AbstractAsyncContextManager[BlobDownload]:
        return self._blob(repository, digest, start)

    async def catalog(self) -> list[str]:
        return await self._reads().catalog()

    async def referrers(
        self, repository: str, digest: str, tags: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        return await self._reads().referrers(repository, digest, tags)
