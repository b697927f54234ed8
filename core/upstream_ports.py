"""The port of an upstream registry client (``adapters.upstream_registry`` implements it).

Every answer is verified before it is returned: a manifest's bytes hash to the digest
asked for (and to the ``Docker-Content-Digest`` the upstream sent); a blob download
states its size up front and its reader fails when the bytes run past that size.
Failures are one of three kinds, so callers decide without parsing messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from core.endpoints import EndpointRecord


class UpstreamError(Exception):
    """An upstream call failed; ``str()`` is the reason, safe to show (no credentials).

    Attributes:
        status: The HTTP status the registry answered with (``None``: no answer).
        code: The first OCI error code of its answer's body (``UNSUPPORTED``, ...).
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UpstreamUnavailableError(UpstreamError):
    """The upstream could not be reached, refused us, or failed (serve stale if allowed)."""


class UpstreamNotFoundError(UpstreamError):
    """The upstream answered that the manifest or blob does not exist."""


class UpstreamRefusedError(UpstreamError):
    """The registry refused a write for good (immutable tag, quota, invalid manifest).

    Retrying the same request cannot succeed; the other kinds may succeed later.
    """


class UpstreamInvalidError(UpstreamError):
    """The upstream sent content that failed verification (digest, size, limits)."""


#: Statuses of a write refusal that a retry of the same write cannot change.
FINAL_STATUSES = frozenset({400, 403, 405, 409, 412, 413, 415, 422})


def refusal_kind(status: int) -> type[UpstreamError]:
    """The error kind of a registry's refusal of a write with ``status``.

    ``404`` is "not there", :data:`FINAL_STATUSES` are final, anything else may succeed
    later. One rule for the HTTP client and this installation's own writer.
    """
    if status == 404:  # noqa: PLR2004 - the status itself
        return UpstreamNotFoundError
    if status in FINAL_STATUSES:
        return UpstreamRefusedError
    return UpstreamUnavailableError


@dataclass(frozen=True, slots=True)
class ManifestHead:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class UpstreamManifest:
    """A manifest's exact bytes as the upstream sent them, digest verified."""

    digest: str
    media_type: str
    payload: bytes


class BlobDownload(Protocol):
    """An open blob download: the blob's declared size and its bytes from :attr:`offset`."""

    @property
    def size(self) -> int:
        """The whole blob's size, whatever part of it this download carries."""
        ...

    @property
    def offset(self) -> int:
        """Where :meth:`chunks` starts in the blob: the start asked for if served, else 0."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body from :attr:`offset` to the end.

        Raises :class:`UpstreamInvalidError` when it runs past or stops short of the
        declared size.
        """
        ...


class UpstreamRegistry(Protocol):
    """The distribution API of one upstream endpoint, as a client."""

    async def ping(self) -> int:
        """``GET /v2/`` through the token flow; the final status (raises if unreachable)."""
        ...

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead: ...

    async def get_manifest(
        self, repository: str, reference: str, max_bytes: int
    ) -> UpstreamManifest: ...

    async def head_blob(self, repository: str, digest: str) -> int:
        """The blob's size."""
        ...

    def blob(
        self, repository: str, digest: str, start: int = 0
    ) -> AbstractAsyncContextManager[BlobDownload]:
        """Open a blob download (redirects followed without credentials).

        With ``start``, the bytes from there on are asked for (an HTTP range); a source
        that sends the whole blob instead is taken as it is. The download's ``offset``
        says which it was.
        """
        ...


class UpstreamFactory(Protocol):
    """Clients for stored endpoints (one per endpoint version, reused)."""

    def client(self, endpoint: EndpointRecord) -> UpstreamRegistry: ...

    async def aclose(self) -> None: ...
