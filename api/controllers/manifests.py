"""Manifests, tag lists and referrers of a repository."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask

from api.auth import authorize
from api.context import Registry
from api.hooks import after_manifest_stored, before_manifest_served, resolve_manifest
from api.http import next_link, pagination, read_limited
from core import mediatypes
from core.access import DELETE, PULL, PUSH, Identity, Scope
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName, is_valid_tag
from core.pipeline import StoredManifest
from core.records import ManifestRecord, RepositoryRecord
from core.services.manifests import PushedManifest


def _scope(name: RepositoryName, action: str) -> Scope:
    return Scope("repository", str(name), frozenset({action}))


def _existing_reference(text: str) -> Reference:
    """A reference to read or delete: a malformed tag names nothing, so it is unknown."""
    if ":" not in text and not is_valid_tag(text):
        raise RegistryError(OCIErrorCode.MANIFEST_UNKNOWN).with_detail({"reference": text[:128]})
    return Reference.parse(text)


def manifest_headers(manifest: ManifestRecord) -> dict[str, str]:
    """The headers of a manifest GET or HEAD, besides its ``Content-Type``."""
    return {
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(manifest.size),
    }


def store_manifest(
    registry: Registry,
    name: RepositoryName,
    reference: Reference,
    payload: bytes,
    content_type: str | None,
    repository: RepositoryRecord | None = None,
    pusher: Identity | None = None,
) -> PushedManifest:
    """Store a pushed manifest (blocking: on a worker thread), creating its repository.

    ``repository`` is the push's repository when the caller already found it; ``pusher``
    is who pushed (written into the push's events).
    """
    if repository is None:
        create = registry.settings.auth.create_project_on_push
        repository = registry.repositories.ensure(name, create)
    return registry.manifests.put(repository, reference, payload, content_type, pusher)


def stored_manifest(
    name: RepositoryName, reference: Reference, pushed: PushedManifest
) -> StoredManifest:
    """What the after-store hooks learn of a push."""
    subject = None if pushed.subject is None else str(pushed.subject)
    return StoredManifest(str(name), str(reference), str(pushed.digest), subject)


def pushed_headers(name: RepositoryName, pushed: PushedManifest) -> dict[str, str]:
    """The headers of a manifest push's ``201``."""
    headers = {
        "Location": f"/v2/{name}/manifests/{pushed.digest}",
        "Docker-Content-Digest": str(pushed.digest),
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = str(pushed.subject)
    return headers


async def read_manifest(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, reference_text: str
) -> Response[Any]:
    await authorize(request, registry, _scope(name, PULL))
    reference = _existing_reference(reference_text)

    # NOTE: one statement for the repository and the manifest, on the event loop when
    # the database allows a read that never waits (cheaper than a worker-thread hop);
    # a repository a content resolver covers (a proxy project) is read through it.
    manifest = await resolve_manifest(registry, name, reference)
    if manifest is None:
        manifest = registry.manifests.read_nowait(name, reference)
    if manifest is None:
        manifest = await anyio.to_thread.run_sync(registry.manifests.read, name, reference)
    await before_manifest_served(request.scope, registry, manifest)
    headers = manifest_headers(manifest)
    if request.method == "HEAD":
        return Response(content=b"", headers=headers, media_type=manifest.media_type)
    # NOTE: a GET is a pull; its pull time is written after the response, if due.
    record = registry.manifests.pull_recording(manifest)
    return Response(
        content=manifest.payload,
        headers=headers,
        media_type=manifest.media_type,
        background=BackgroundTask(record) if record is not None else None,
    )


async def put_manifest(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, reference_text: str
) -> Response[Any]:
    pusher = await authorize(request, registry, _scope(name, PUSH))
    reference = Reference.parse(reference_text)
    payload = await read_limited(request, registry.settings.limits.manifest_max_bytes)
    content_type = request.headers.get("content-type")
    pushed = await anyio.to_thread.run_sync(
        partial(store_manifest, registry, name, reference, payload, content_type, pusher=pusher)
    )
    await after_manifest_stored(request.scope, registry, stored_manifest(name, reference, pushed))
    return Response(content=b"", status_code=201, headers=pushed_headers(name, pushed))


async def delete_manifest(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, reference_text: str
) -> Response[Any]:
    await authorize(request, registry, _scope(name, DELETE))
    reference = _existing_reference(reference_text)
    repository = await anyio.to_thread.run_sync(registry.repositories.require, name)
    await anyio.to_thread.run_sync(registry.manifests.delete, repository, reference)
    return Response(content=b"", status_code=202)


async def list_tags(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName
) -> Response[Any]:
    await authorize(request, registry, _scope(name, PULL))
    n, last = pagination(request, registry.settings.limits.page_max)
    repository = await anyio.to_thread.run_sync(registry.repositories.require, name)
    tags = await anyio.to_thread.run_sync(registry.manifests.tags, repository, last, n + 1)
    headers = {}
    more, tags = len(tags) > n, tags[:n]
    if more and tags:
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, tags[-1])
    return Response(
        content={"name": str(name), "tags": tags}, headers=headers, media_type="application/json"
    )


async def list_referrers(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, digest_text: str
) -> Response[Any]:
    await authorize(request, registry, _scope(name, PULL))
    digest = Digest.parse(digest_text)
    artifact_type = request.query_params.get("artifactType")
    repository = await anyio.to_thread.run_sync(registry.repositories.find, name)
    index = await anyio.to_thread.run_sync(
        registry.manifests.referrers, repository, digest, artifact_type
    )
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return Response(content=index, headers=headers, media_type=mediatypes.OCI_INDEX)
