"""The API's side of the ``/v2`` hook points (``core.pipeline``).

Where a request's :class:`~core.pipeline.OCIRequest` lives and how the handlers reach
the hooks.

The pipeline (``api.pipeline``) puts the request under ``scope["moorage_oci"]``; the
full-path controllers and the manifest fast path call the same functions here, so a hook
sees a request the same way whichever path answered it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.serialization import encode_json

from api.context import Registry
from api.errors import API_VERSION_HEADERS
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
from core.pipeline import (
    ContentResolver,
    OCIRequest,
    ResolvedBlob,
    ServedBlob,
    StoredManifest,
    blob_serving,
    manifest_serving,
    manifest_stored,
)
from core.records import ManifestRecord

OCI_KEY = "moorage_oci"
Send = Callable[[Any], Awaitable[None]]


def oci_request_of(scope: Any) -> OCIRequest:
    """The pipeline's record of the ``/v2`` request ``scope`` belongs to."""
    request = scope.get(OCI_KEY)
    if not isinstance(request, OCIRequest):
        raise TypeError("a /v2 request reached a handler without the pipeline")
    return request


async def before_manifest_served(scope: Any, registry: Registry, manifest: ManifestRecord) -> None:
    """The before-manifest-served point; a refusal propagates as its ``RegistryError``."""
    if registry.hooks.manifest_serve:
        await manifest_serving(registry.hooks, oci_request_of(scope), manifest)


async def before_blob_served(scope: Any, registry: Registry, blob: ServedBlob) -> None:
    """The before-blob-served point; a refusal propagates as its ``RegistryError``."""
    if registry.hooks.blob_serve:
        await blob_serving(registry.hooks, oci_request_of(scope), blob)


async def after_manifest_stored(scope: Any, registry: Registry, stored: StoredManifest) -> None:
    """The after-manifest-stored point (hook failures are logged, never raised)."""
    if registry.hooks.manifest_stored:
        await manifest_stored(registry.hooks, oci_request_of(scope), stored)


_BLOB_MISSING = frozenset({OCIErrorCode.BLOB_UNKNOWN, OCIErrorCode.NAME_UNKNOWN})


def resolver_for(registry: Registry, name: RepositoryName) -> ContentResolver | None:
    """The content resolver that answers reads of ``name`` (``None``: the local store)."""
    content = registry.hooks.content
    if content is not None and content.covers(str(name)):
        return content
    return None


async def resolve_manifest(
    registry: Registry, name: RepositoryName, reference: Reference
) -> ManifestRecord | None:
    """The manifest a content resolver serves for ``name``; ``None`` when it is local."""
    content = resolver_for(registry, name)
    return None if content is None else await content.manifest(name, reference)


async def resolve_missing_blob(
    registry: Registry, name: RepositoryName, digest: Digest, head: bool, missing: RegistryError
) -> ResolvedBlob:
    """A blob the local store lacks, from the resolver covering ``name``; else ``missing``."""
    content = resolver_for(registry, name)
    if content is None or missing.code not in _BLOB_MISSING:
        raise missing
    return await content.blob(name, digest, head=head)


async def send_oci_error(send: Send, method: str, error: RegistryError) -> None:
    """Answer with ``error`` as the OCI error body, exactly as the full path's handler does."""
    body = b"" if method == "HEAD" else encode_json(error.body())
    headers = [
        (key.lower().encode(), value.encode("latin-1"))
        for key, value in {**API_VERSION_HEADERS, **error.headers}.items()
    ]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
