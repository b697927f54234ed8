"""The route table of ``/v2``: which endpoint a path names.

Repository names contain slashes, so a path is matched against the spec's endpoint
shapes (the name is the longest prefix before the endpoint suffix). The pipeline, the
manifest fast path and the dispatcher (``api.controllers.oci``) all match through here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.pipeline import OCIRoute

_TABLE: tuple[tuple[OCIRoute, re.Pattern[str]], ...] = (
    (OCIRoute.TAGS, re.compile(r"^/(?P<name>.+)/tags/list$")),
    (OCIRoute.MANIFEST, re.compile(r"^/(?P<name>.+)/manifests/(?P<arg>[^/]+)$")),
    (OCIRoute.UPLOADS, re.compile(r"^/(?P<name>.+)/blobs/uploads/?$")),
    (OCIRoute.UPLOAD, re.compile(r"^/(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)$")),
    (OCIRoute.BLOB, re.compile(r"^/(?P<name>.+)/blobs/(?P<arg>[^/]+)$")),
    (OCIRoute.REFERRERS, re.compile(r"^/(?P<name>.+)/referrers/(?P<arg>[^/]+)$")),
)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The endpoint of a path, with its repository name and last segment as sent."""

    route: OCIRoute
    name: str | None = None
    arg: str | None = None


UNKNOWN = RouteMatch(OCIRoute.UNKNOWN)


def match_route(path: str) -> RouteMatch:
    """The endpoint of ``path``, the part of a request path after ``/v2``."""
    for route, pattern in _TABLE:
        found = pattern.match(path)
        if found is not None:
            return RouteMatch(route, found.group("name"), found.groupdict().get("arg"))
    return UNKNOWN


def match_path(path: str) -> RouteMatch:
    """The endpoint of a whole request path (``/v2/...``); one trailing slash is ignored."""
    if path in ("/v2", "/v2/"):
        return RouteMatch(OCIRoute.PING)
    if not path.startswith("/v2/"):
        return UNKNOWN
    rest = path[3:]
    if rest == "/_catalog":
        return RouteMatch(OCIRoute.CATALOG)
    found = match_route(rest)
    if found is UNKNOWN and rest.endswith("/"):
        found = match_route(rest[:-1])
    return found
