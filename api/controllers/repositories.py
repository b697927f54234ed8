"""Management API: a project's repositories and their tags.

``GET /api/v1/projects/{project}/repositories`` lists repositories;
``GET .../repositories/{repository}/tags`` lists a repository's tags,
``GET .../repositories/{repository}/tags/{tag}`` shows one (its manifest's digest, media
type and size) and ``DELETE .../repositories/{repository}/tags/{tag}`` removes it. ``{repository}``
is the repository's path inside the project written with its plain slashes
(``team/app`` for ``{project}/team/app``); the route ends at ``/tags`` or
``/tags/{tag}`` (a tag never holds a slash). Lists are paginated with ``limit`` and
``last`` like the other lists; ``next`` is the ``last`` of the following page.
"""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, delete, get
from litestar.params import FromPath, FromQuery
from pydantic import BaseModel

from api.context import identity_of, registry_of
from api.principal import api_caller, require_caller
from core.errors import NotFoundError
from core.names import sent_path
from core.services.repository_access import RepositoryAccess

_TAGS = re.compile(r"^/?(?P<repository>.+)/tags/?$")
_TAG = re.compile(r"^/?(?P<repository>.+)/tags/(?P<tag>[^/]+)$")
_PAGE_MAX = 100

_PATH_DESCRIPTION = (
    "`{repository}` is the repository's path inside the project with its plain slashes, "
    "e.g. `/api/v1/projects/acme/repositories/team/app/tags/v1` for `acme/team/app:v1`."
)


class RepositoryOut(BaseModel):
    name: str


class RepositoryPage(BaseModel):
    items: list[RepositoryOut]
    next: str | None = None


class TagPage(BaseModel):
    items: list[str]
    next: str | None = None


class TagOut(BaseModel):
    name: str
    repository: str
    digest: str
    media_type: str
    size: int


def _service(request: Request[Any, Any, Any]) -> RepositoryAccess:
    registry = registry_of(request)
    identity = identity_of(registry)
    return RepositoryAccess(
        identity.access, identity.store, registry.repositories, registry.manifests
    )


def _sent(request: Request[Any, Any, Any], project: str, rest: str) -> str:
    """``rest`` as the client sent it: ``team//app`` is refused, not read as ``team/app``."""
    prefix = f"/api/v1/projects/{project}/repositories"
    return sent_path(request.scope.get("raw_path"), prefix, rest)


def _match(pattern: re.Pattern[str], path: str) -> re.Match[str]:
    found = pattern.match(path)
    if found is None:
        raise NotFoundError(f"no such route: {path!r}")
    return found


async def _show_tag(
    request: Request[Any, Any, Any], project: str, repository: str, tag: str
) -> TagOut:
    caller = await api_caller(request, registry_of(request))
    show = _service(request).tag
    manifest = await anyio.to_thread.run_sync(show, caller, project, repository, tag)
    return TagOut(
        name=tag,
        repository=f"{project}/{repository}",
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size,
    )


class RepositoryController(Controller):
    path = "/api/v1/projects/{project:str}/repositories"
    tags = ["repositories"]  # noqa: RUF012

    @get("/", summary="List the repositories of a project the caller may read")
    async def list_repositories(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        limit: FromQuery[int] = _PAGE_MAX,
        last: FromQuery[str | None] = None,
    ) -> RepositoryPage:
        caller = await api_caller(request, registry_of(request))
        limit = max(1, min(limit, _PAGE_MAX))
        listing = _service(request).names
        names = await anyio.to_thread.run_sync(listing, caller, project, last, limit + 1)
        more, names = len(names) > limit, names[:limit]
        return RepositoryPage(
            items=[RepositoryOut(name=name) for name in names],
            next=names[-1] if more and names else None,
        )

    @get(
        "/{rest:path}",
        summary="List the tags of a repository (GET .../repositories/{repository}/tags) "
        "or show one (GET .../repositories/{repository}/tags/{tag})",
        description=_PATH_DESCRIPTION,
    )
    async def list_tags(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        rest: FromPath[str],
        limit: FromQuery[int] = _PAGE_MAX,
        last: FromQuery[str | None] = None,
    ) -> TagPage | TagOut:
        rest = _sent(request, project, rest)
        one = _TAG.match(rest)
        if one is not None and _TAGS.match(rest) is None:
            return await _show_tag(request, project, one["repository"], one["tag"])
        repository = _match(_TAGS, rest)["repository"]
        caller = await api_caller(request, registry_of(request))
        limit = max(1, min(limit, _PAGE_MAX))
        listing = _service(request).tags
        tags = await anyio.to_thread.run_sync(listing, caller, project, repository, last, limit + 1)
        more, tags = len(tags) > limit, tags[:limit]
        return TagPage(items=tags, next=tags[-1] if more and tags else None)

    @delete(
        "/{rest:path}",
        summary="Delete a tag: DELETE .../repositories/{repository}/tags/{tag}",
        description=_PATH_DESCRIPTION
        + " Needs delete rights on the repository; an immutable tag is refused with 403 "
        "(`DENIED`) naming the immutability rule. The manifest stays (GC or retention "
        "removes untagged manifests).",
        status_code=204,
    )
    async def delete_tag(
        self, request: Request[Any, Any, Any], project: FromPath[str], rest: FromPath[str]
    ) -> None:
        found = _match(_TAG, _sent(request, project, rest))
        caller = await require_caller(request, registry_of(request))
        remove = _service(request).delete_tag
        await anyio.to_thread.run_sync(remove, caller, project, found["repository"], found["tag"])
