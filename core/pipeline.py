"""The contract of the ``/v2`` request pipeline: the points every OCI request passes.

Every request under ``/v2`` passes these points, whichever way the API answers it
(the full path or the manifest fast path, which is the same steps with fewer hops):

1. **request start** -- once, before authentication (:class:`RequestStartHook`). A hook
   may refuse the request by raising :class:`~core.errors.RegistryError`; the client then
   gets that OCI error and nothing else runs but the end hooks.
2. **before a manifest is served** -- a manifest ``GET`` or ``HEAD`` that was authorized
   and found its manifest, before any byte is sent (:class:`ManifestServeHook`). A hook
   may refuse by raising :class:`~core.errors.RegistryError` (pull policy: vulnerability
   or signature gates); the client gets that OCI error instead of the manifest.
3. **before a blob is served** -- a blob ``GET`` or ``HEAD`` that was authorized and found
   its blob (:class:`BlobServeHook`); may refuse like (2).
4. **after a manifest is stored** -- a manifest ``PUT`` whose store committed, before the
   ``201`` is sent (:class:`ManifestStoredHook`). The manifest is stored whatever the hook
   does: an exception is logged and the push still succeeds.
5. **request end** -- once, after the response was sent or the request failed, with the
   status sent (:class:`RequestEndHook`; audit is one). Exceptions are logged, not raised.

A **content resolver** (:class:`ContentResolver`, at most one: the proxy cache) answers
manifest and blob reads of the repositories it ``covers``: the controllers ask it instead
of the local store for those repositories only (a manifest it returns still passes point
2, a blob point 3). ``covers`` is a dictionary lookup, so other repositories pay nothing
more.


Hooks run on the event loop, in registration order: they must not block (hand blocking
work to a thread or a queue). Unregistered points cost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from core.access import Identity
from core.digests import Digest
from core.names import Reference, RepositoryName
from core.records import ManifestRecord

_log = logging.getLogger("moorage.pipeline")


class OCIRoute(StrEnum):
    """The endpoint of a ``/v2`` request (the distribution spec's endpoint shapes)."""

    PING = "ping"
    CATALOG = "catalog"
    TAGS = "tags"
    MANIFEST = "manifest"
    UPLOADS = "uploads"  # start an upload
    UPLOAD = "upload"  # one upload session
    BLOB = "blob"
    REFERRERS = "referrers"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class OCIRequest:
    """One ``/v2`` request as the hooks see it.

    ``repository`` and ``reference`` are the path's name and last segment (a tag, digest
    or upload id) as sent, not yet validated. ``notes`` is where authentication records
    the caller (``identity``, or the ``attempted`` username of failed credentials).
    """

    method: str
    path: str
    route: OCIRoute
    repository: str | None
    reference: str | None
    request_id: str
    client: str = ""
    user_agent: str = ""
    #: The scheme of the ``Authorization`` header sent (lower case; empty: none).
    auth_scheme: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: Request body bytes received and response body bytes sent (``Content-Length`` of a
    #: non-``HEAD`` answer), counted by the pipeline for the request-end hooks.
    received: int = 0
    sent: int = 0
    #: The request's headers as received (lower-case names, bytes), e.g. for trace context.
    headers: Sequence[tuple[bytes, bytes]] = ()

    @property
    def identity(self) -> Identity | None:
        """The authenticated caller, once authentication noted it."""
        identity = self.notes.get("identity")
        return identity if isinstance(identity, Identity) else None


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest a push stored: where, under which reference, and what it is."""

    repository: str
    reference: str
    digest: str
    subject: str | None


@dataclass(frozen=True, slots=True)
class ServedBlob:
    """A blob about to be served."""

    repository: str
    digest: str
    size: int


class RequestStartHook(Protocol):
    async def __call__(self, request: OCIRequest, /) -> None:
        """Called once per request before anything else; may raise ``RegistryError``."""


class RequestEndHook(Protocol):
    async def __call__(self, request: OCIRequest, status: int, /) -> None:
        """Called once per request with the status sent (500 if none was)."""


class ManifestServeHook(Protocol):
    async def __call__(self, request: OCIRequest, manifest: ManifestRecord, /) -> None:
        """Called before a manifest is served; raise ``RegistryError`` to refuse it."""


class ManifestStoredHook(Protocol):
    async def __call__(self, request: OCIRequest, stored: StoredManifest, /) -> None:
        """Called after a push stored a manifest, before its ``201`` is sent."""


class BlobServeHook(Protocol):
    async def __call__(self, request: OCIRequest, blob: ServedBlob, /) -> None:
        """Called before a blob is served; raise ``RegistryError`` to refuse it."""


@dataclass(frozen=True, slots=True)
class ResolvedBlob:
    """A blob a content resolver serves: its size and (for a ``GET``) its bytes."""

    digest: str
    size: int
    chunks: AsyncIterator[bytes] | None


class ContentResolver(Protocol):
    """Where reads of some repositories come from instead of the local store (the proxy)."""

    def covers(self, repository: str) -> bool:
        """Whether this resolver answers reads of ``repository`` (cheap: no I/O)."""
        ...

    async def manifest(self, name: RepositoryName, reference: Reference) -> ManifestRecord:
        """The manifest to serve; raises ``RegistryError`` like a local miss would."""
        ...

    async def blob(self, name: RepositoryName, digest: Digest, *, head: bool) -> ResolvedBlob:
        """A blob the local store lacks; raises ``RegistryError`` (``BLOB_UNKNOWN``...)."""
        ...


@dataclass(frozen=True, slots=True)
class Hooks:
    """The hooks registered at each point, run in order (see the module's contract)."""

    request_start: tuple[RequestStartHook, ...] = ()
    request_end: tuple[RequestEndHook, ...] = ()
    manifest_serve: tuple[ManifestServeHook, ...] = ()
    manifest_stored: tuple[ManifestStoredHook, ...] = ()
    blob_serve: tuple[BlobServeHook, ...] = ()
    #: Reads of the repositories it covers (``None``: every read is local).
    content: ContentResolver | None = None

    def with_first_end(self, hook: RequestEndHook) -> Hooks:
        """These hooks with ``hook`` as the first request-end hook."""
        return replace(self, request_end=(hook, *self.request_end))


async def request_started(hooks: Hooks, request: OCIRequest) -> None:
    """Run the request-start hooks; a refusal propagates."""
    for hook in hooks.request_start:
        await hook(request)


async def manifest_serving(hooks: Hooks, request: OCIRequest, manifest: ManifestRecord) -> None:
    """Run the before-manifest-served hooks; a refusal propagates."""
    for hook in hooks.manifest_serve:
        await hook(request, manifest)


async def blob_serving(hooks: Hooks, request: OCIRequest, blob: ServedBlob) -> None:
    """Run the before-blob-served hooks; a refusal propagates."""
    for hook in hooks.blob_serve:
        await hook(request, blob)


async def manifest_stored(hooks: Hooks, request: OCIRequest, stored: StoredManifest) -> None:
    """Run the after-store hooks; their failures are logged (the manifest is stored)."""
    for hook in hooks.manifest_stored:
        try:
            await hook(request, stored)
        except Exception:  # noqa: BLE001 - a hook's failure must not fail the request
            _log.exception("after-store hook %r failed on %s", hook, stored.digest)


async def request_ended(hooks: Hooks, request: OCIRequest, status: int) -> None:
    """Run the request-end hooks; their failures are logged."""
    for hook in hooks.request_end:
        try:
            await hook(request, status)
        except Exception:  # noqa: BLE001 - a hook's failure must not fail the request
            _log.exception("request-end hook %r failed on %s", hook, request.path)
