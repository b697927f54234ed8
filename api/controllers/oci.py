"""The OCI distribution API under ``/v2``: one route that dispatches by path shape.

The path is matched with the ``/v2`` route table (``api.oci_routes``), the same one the
pipeline and the manifest fast path use; this module maps each endpoint and method to its
controller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from litestar import Request, Response, get, route
from litestar.params import FromPath

from api.auth import challenge, registry_caller
from api.context import identity_of, registry_of
from api.controllers import blobs, manifests, uploads
from api.errors import API_VERSION_HEADERS
from api.http import next_link, pagination
from api.oci_routes import match_route
from core.access import Scope
from core.errors import OCIErrorCode, RegistryError
from core.names import RepositoryName, oci_path, unknown_endpoint
from core.pipeline import OCIRoute

Handler = Callable[..., Awaitable[Response[Any]]]

_HANDLERS: dict[OCIRoute, dict[str, Handler]] = {
    OCIRoute.TAGS: {"GET": manifests.list_tags, "HEAD": manifests.list_tags},
    OCIRoute.MANIFEST: {
        "GET": manifests.read_manifest,
        "HEAD": manifests.read_manifest,
        "PUT": manifests.put_manifest,
        "DELETE": manifests.delete_manifest,
    },
    OCIRoute.UPLOADS: {"POST": uploads.start_upload},
    OCIRoute.UPLOAD: {
        "GET": uploads.upload_status,
        "PATCH": uploads.patch_upload,
        "PUT": uploads.put_upload,
        "DELETE": uploads.cancel_upload,
    },
    OCIRoute.BLOB: {"GET": blobs.read_blob, "HEAD": blobs.read_blob, "DELETE": blobs.delete_blob},
    OCIRoute.REFERRERS: {"GET": manifests.list_referrers},
}

CATALOG_SCOPE = Scope("registry", "catalog", frozenset({"*"}))


@get(["/v2", "/v2/"], include_in_schema=False)
async def ping(request: Request[Any, Any, Any]) -> Response[Any]:
    """API version check: 200 with a valid token, else the 401 challenge naming the realm."""
    registry = registry_of(request)
    if await registry_caller(request, registry) is None:
        raise challenge(request, registry, None)
    return Response(content={}, headers=API_VERSION_HEADERS, media_type="application/json")


@get("/v2/_catalog", include_in_schema=False)
async def catalog(request: Request[Any, Any, Any]) -> Response[Any]:
    """The repositories the caller may read, paginated with ``n``/``last``.

    Only callers with a registry token (an anonymous one will do) or valid Basic
    credentials get an answer; without either it is the ``401`` challenge, like every other
    ``/v2`` endpoint.
    """
    registry = registry_of(request)
    caller = await registry_caller(request, registry)
    if caller is None:
        raise challenge(request, registry, CATALOG_SCOPE)
    n, last = pagination(request, registry.settings.limits.page_max)
    identity = caller.identity
    readable = identity_of(registry).access.readable_repositories
    names = await anyio.to_thread.run_sync(readable, identity, last, n + 1)
    more, names = len(names) > n, names[:n]
    headers = {"Link": next_link("/v2/_catalog", n, names[-1])} if more and names else {}
    return Response(content={"repositories": names}, headers=headers, media_type="application/json")


@route(
    "/v2/{path:path}",
    http_method=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"],
    request_max_body_size=None,
    status_code=200,
    include_in_schema=False,
)
async def dispatch(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
    """Route an OCI request to its controller by the shape of its path."""
    registry = registry_of(request)
    path = oci_path(request.scope.get("raw_path"), path)
    found = match_route(path)
    handlers = _HANDLERS.get(found.route)
    if handlers is None or found.name is None:
        raise unknown_endpoint(path)
    handler = handlers.get(request.method)
    if handler is None:
        raise RegistryError(OCIErrorCode.UNSUPPORTED, "method not allowed", status=405)
    name = RepositoryName.parse(found.name)
    args = (name,) if found.arg is None else (name, found.arg)
    return await handler(request, registry, *args)
