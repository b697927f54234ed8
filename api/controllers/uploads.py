"""Blob uploads: ``/v2/<name>/blobs/uploads/[<id>]``.

Monolithic (POST+PUT, or one POST with ``digest``), chunked (PATCH with
``Content-Range``), streamed (PATCH without it), status (GET), cancel (DELETE) and
cross-repository mount (POST with ``mount``/``from``).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response

from api.auth import authorize
from api.context import Registry
from api.http import content_range, pump
from core.access import PULL, PUSH, Scope
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import RepositoryName
from core.records import PushTarget, UploadRecord
from core.services.uploads import range_headers


def _location(name: RepositoryName, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _session_headers(name: RepositoryName, upload: UploadRecord) -> dict[str, str]:
    return {
        "Location": _location(name, upload.id),
        "Docker-Upload-UUID": upload.id,
        **range_headers(upload.offset),
    }


def _created(name: RepositoryName, digest: Digest) -> Response[Any]:
    return Response(
        content=b"",
        status_code=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
    )


async def _repository_for_push(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName
) -> PushTarget:
    """The upload's target; its repository row appears with its first blob."""
    await authorize(request, registry, Scope("repository", str(name), frozenset({PUSH})))
    create = registry.settings.auth.create_project_on_push
    return await anyio.to_thread.run_sync(registry.repositories.push_target, name, create)


async def _append(
    request: Request[Any, Any, Any],
    registry: Registry,
    repository: PushTarget,
    upload_id: str,
) -> UploadRecord:
    declared_range = content_range(request.headers.get("content-range"))
    start = declared_range[0] if declared_range else None
    chunk = await anyio.to_thread.run_sync(
        registry.uploads.open_chunk, repository, upload_id, start
    )
    try:
        await pump(request.stream(), chunk.write)
    except BaseException:
        await anyio.to_thread.run_sync(registry.uploads.abort_chunk, chunk)
        raise
    declared = request.headers.get("content-length")
    if declared_range is not None:
        declared = str(declared_range[1] - declared_range[0] + 1)
    if declared is not None and declared.isdigit() and int(declared) != chunk.written:
        await anyio.to_thread.run_sync(registry.uploads.abort_chunk, chunk)
        raise RegistryError(OCIErrorCode.SIZE_INVALID)
    if chunk.written == 0:
        await anyio.to_thread.run_sync(registry.uploads.abort_chunk, chunk)
        return chunk.upload
    return await anyio.to_thread.run_sync(registry.uploads.commit_chunk, chunk)


async def _mount(
    request: Request[Any, Any, Any], registry: Registry, repository: PushTarget
) -> Response[Any] | None:
    mount, source_text = request.query_params.get("mount"), request.query_params.get("from")
    if not mount or not source_text:
        return None
    digest = Digest.parse(mount)
    try:
        source_name = RepositoryName.parse(source_text)
    except RegistryError:
        return None
    wanted = Scope("repository", str(source_name), frozenset({PULL}))
    try:
        await authorize(request, registry, wanted)
    except RegistryError:
        # NOTE: a source the caller may not read is indistinguishable from a missing one.
        return None
    source = await anyio.to_thread.run_sync(registry.repositories.find, source_name)
    if source is None:
        return None
    blob = await anyio.to_thread.run_sync(registry.uploads.mount, repository, digest, source)
    return _created(repository_name(repository), digest) if blob is not None else None


def repository_name(repository: PushTarget) -> RepositoryName:
    return RepositoryName.parse(repository.name)


async def start_upload(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName
) -> Response[Any]:
    repository = await _repository_for_push(request, registry, name)
    mounted = await _mount(request, registry, repository)
    if mounted is not None:
        return mounted
    digest_text = request.query_params.get("digest")
    digest = Digest.parse(digest_text) if digest_text else None
    upload = await anyio.to_thread.run_sync(registry.uploads.start, repository)
    if digest is None:
        return Response(content=b"", status_code=202, headers=_session_headers(name, upload))
    upload = await _append(request, registry, repository, upload.id)
    await anyio.to_thread.run_sync(registry.uploads.finish, repository, upload, digest)
    return _created(name, digest)


async def patch_upload(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, upload_id: str
) -> Response[Any]:
    repository = await _repository_for_push(request, registry, name)
    upload = await _append(request, registry, repository, upload_id)
    return Response(content=b"", status_code=202, headers=_session_headers(name, upload))


async def put_upload(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, upload_id: str
) -> Response[Any]:
    repository = await _repository_for_push(request, registry, name)
    digest_text = request.query_params.get("digest")
    if not digest_text:
        raise RegistryError(OCIErrorCode.DIGEST_INVALID, "the digest parameter is required")
    digest = Digest.parse(digest_text)
    upload = await _append(request, registry, repository, upload_id)
    await anyio.to_thread.run_sync(registry.uploads.finish, repository, upload, digest)
    return _created(name, digest)


async def upload_status(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, upload_id: str
) -> Response[Any]:
    repository = await _repository_for_push(request, registry, name)
    upload = await anyio.to_thread.run_sync(registry.uploads.get, repository, upload_id)
    return Response(content=b"", status_code=204, headers=_session_headers(name, upload))


async def cancel_upload(
    request: Request[Any, Any, Any], registry: Registry, name: RepositoryName, upload_id: str
) -> Response[Any]:
    repository = await _repository_for_push(request, registry, name)
    await anyio.to_thread.run_sync(registry.uploads.cancel, repository, upload_id)
    return Response(content=b"", status_code=204)
