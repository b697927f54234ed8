"""The route table of ``/v2``: which endpoint a path names.

Repository names contain slashes, so a path is matched against the spec's endpoint
shapes, ``/<name>/<suffix>``, where every suffix is one or two fixed segments and at most
one argument segment at the end: the name is whatever comes before the suffix. Matching
therefore reads only the path's last three segments (``str.rpartition``; no regular
expression, which cost a manifest read 3 to 4 us). Where two shapes fit one path the
spec's order decides: ``tags/list`` before ``manifests``, ``blobs/uploads`` before
``blobs``. The pipeline, the manifest fast path and the dispatcher
(``api.controllers.oci``) all match through here.
"""

from __future__ import annotations

from typing import NamedTuple

from core.pipeline import OCIRoute


class RouteMatch(NamedTuple):
    """The endpoint of a path, with its repository name and last segment as sent.

    A tuple, not a frozen dataclass: one is made per request, and a frozen dataclass's
    constructor cost a manifest read about 2 us.
    """

    route: OCIRoute
    name: str | None = None
    arg: str | None = None


UNKNOWN = RouteMatch(OCIRoute.UNKNOWN)

#: Endpoints named by the segment before the path's last one (the argument).
_WITH_ARG = {
    "manifests": OCIRoute.MANIFEST,
    "blobs": OCIRoute.BLOB,
    "referrers": OCIRoute.REFERRERS,
}


def match_route(path: str) -> RouteMatch:
    """The endpoint of ``path``, the part of a request path after ``/v2``.

    ``path`` is ``/<name>/<suffix>``; a name is at least one character and holds no line
    break. Anything else is :data:`UNKNOWN`.
    """
    found = _match(path)
    if found.name is not None and "\n" in found.name:
        return UNKNOWN
    return found


def _match(path: str) -> RouteMatch:
    if not path.startswith("/"):
        return UNKNOWN
    head, _, last = path.rpartition("/")
    prefix, _, segment = head.rpartition("/")
    # ``prefix`` is "/<name>" when the path has the shape of a one-word suffix.
    if segment == "uploads" or (segment == "blobs" and last == "uploads"):
        return _uploads(prefix, segment, last)
    if segment == "tags":
        found = RouteMatch(OCIRoute.TAGS, prefix[1:]) if last == "list" else UNKNOWN
    else:
        route = _WITH_ARG.get(segment)
        found = UNKNOWN if route is None or not last else RouteMatch(route, prefix[1:], last)
    return found if len(prefix) > 1 else UNKNOWN


def _uploads(prefix: str, segment: str, last: str) -> RouteMatch:
    """``.../blobs/uploads[/]`` (start an upload) or ``.../blobs/uploads/<id>``."""
    if segment == "blobs":  # the path ends in "/blobs/uploads"
        return RouteMatch(OCIRoute.UPLOADS, prefix[1:]) if len(prefix) > 1 else UNKNOWN
    before, _, blobs = prefix.rpartition("/")
    if blobs != "blobs" or len(before) <= 1:
        return UNKNOWN
    if last:
        return RouteMatch(OCIRoute.UPLOAD, before[1:], last)
    return RouteMatch(OCIRoute.UPLOADS, before[1:])


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
