"""Management API: a project's repositories and their tags.

``GET /api/v1/projects/{project}/repositories`` lists repositories;
``GET .../repositories/{repository}/tags`` lists a repository's tags,
``GET .../repositories/{repository}/tags/{tag}`` shows one (its manifest's digest, media
type and size) and ``DELETE .../repositories/{repository}/tags/{tag}`` removes it. ``{repository}``
is the repository's path inside the project written with its plain slashes
(``team/app`` for ``{project}/team/app``); the route ends at ``/tags`` or
``/tags/{tag}`` (a tag never holds a slash). Lists page like every list
(``api.pagination``: ``limit``, ``last``, ``next`` and a ``Link`` header).
"""

from __future__ import annotations

import re
from typing import Any, cast

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from pydantic import BaseModel

from api.guards import project_permission, signed_in
from api.pagination import NAMES, Page, PageParams
from core.access import Identity
from core.errors import NotFoundError
from core.names import sent_path
from core.services.repository_access import RepositoryAccess

_TAGS = re.compile(r"^/?(?P<repository>.+)/tags/?$")
_TAG = re.compile(r"^/?(?P<repository>.+)/tags/(?P<tag>[^/]+)$")

_PATH_DESCRIPTION = (
    "`{repository}` is the repository's path inside the project with its plain slashes, "
    "e.g. `/api/v1/projects/acme/repositories/team/app/tags/v1` for `acme/team/app:v1`."
)


class RepositoryOut(BaseModel):
    name: str


class RepositoryPage(Page[RepositoryOut]):
    """Repositories of the project the caller may pull, by full name."""


class TagPage(Page[str]):
    """Tags of a repository, by name."""


class TagOut(BaseModel):
    name: str
    repository: str
    digest: str
    media_type: str
    size: int


def _sent(request: Request[Any, Any, Any], project: str, rest: str) -> str:
    """``rest`` as the client sent it: ``team//app`` is refused, not read as ``team/app``."""
    prefix = f"/api/v1/projects/{project}/repositories"
    return sent_path(request.scope.get("raw_path"), prefix, rest)


def _match(pattern: re.Pattern[str], path: str) -> re.Match[str]:
    found = pattern.match(path)
    if found is None:
        raise NotFoundError(f"no such route: {path!r}")
    return found


def _same(name: str) -> str:
    return name


async def _show_tag(
    service: RepositoryAccess, caller: Identity, project: str, repository: str, tag: str
) -> TagOut:
    manifest = await anyio.to_thread.run_sync(service.tag, caller, project, repository, tag)
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
    guards = [project_permission("project", "read")]  # noqa: RUF012

    @get("/", summary="List the repositories of a project the caller may read")
    async def list_repositories(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        repository_access: NamedDependency[RepositoryAccess],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[RepositoryPage]:
        listing = repository_access.names
        window = await page.fetch(
            lambda after, count: listing(caller, project, after, count), key=_same, cursor=NAMES
        )
        items = [RepositoryOut(name=name) for name in window.items]
        return window.respond(request, RepositoryPage, items)

    @get(
        "/{rest:path}",
        summary="List the tags of a repository (GET .../repositories/{repository}/tags) "
        "or show one (GET .../repositories/{repository}/tags/{tag})",
        description=_PATH_DESCRIPTION,
    )
    async def list_tags(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        repository_access: NamedDependency[RepositoryAccess],
        project: FromPath[str],
        rest: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[TagPage | TagOut]:
        rest = _sent(request, project, rest)
        one = _TAG.match(rest)
        if one is not None and _TAGS.match(rest) is None:
            shown = await _show_tag(
                repository_access, caller, project, one["repository"], one["tag"]
            )
            return Response(content=shown)
        repository = _match(_TAGS, rest)["repository"]
        listing = repository_access.tags
        window = await page.fetch(
            lambda after, count: listing(caller, project, repository, after, count),
            key=_same,
            cursor=NAMES,
        )
        listed = window.respond(request, TagPage, window.items)
        return cast("Response[TagPage | TagOut]", listed)

    @delete(
        "/{rest:path}",
        summary="Delete a tag: DELETE .../repositories/{repository}/tags/{tag}",
        description=_PATH_DESCRIPTION
        + " Needs delete rights on the repository; an immutable tag is refused with 403 "
        "(`DENIED`) naming the immutability rule. The manifest stays (GC or retention "
        "removes untagged manifests).",
        status_code=204,
        guards=[signed_in],
    )
    async def delete_tag(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        repository_access: NamedDependency[RepositoryAccess],
        project: FromPath[str],
        rest: FromPath[str],
    ) -> None:
        found = _match(_TAG, _sent(request, project, rest))
        remove = repository_access.delete_tag
        await anyio.to_thread.run_sync(remove, caller, project, found["repository"], found["tag"])
