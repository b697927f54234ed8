"""Which ``/v2`` endpoint a path names: the distribution spec's endpoint shapes."""

from __future__ import annotations

import itertools
import re

import pytest

from api.oci_routes import UNKNOWN, RouteMatch, match_path, match_route
from core.audit import classify, classify_oci
from core.pipeline import OCIRoute

#: The spec's shapes as full-string patterns, in the order that decides between two that
#: fit one path (a name is ``.+``: at least one character, no line break).
SPEC_SHAPES = (
    (OCIRoute.TAGS, re.compile(r"/(?P<name>.+)/tags/list")),
    (OCIRoute.MANIFEST, re.compile(r"/(?P<name>.+)/manifests/(?P<arg>[^/]+)")),
    (OCIRoute.UPLOADS, re.compile(r"/(?P<name>.+)/blobs/uploads/?")),
    (OCIRoute.UPLOAD, re.compile(r"/(?P<name>.+)/blobs/uploads/(?P<arg>[^/]+)")),
    (OCIRoute.BLOB, re.compile(r"/(?P<name>.+)/blobs/(?P<arg>[^/]+)")),
    (OCIRoute.REFERRERS, re.compile(r"/(?P<name>.+)/referrers/(?P<arg>[^/]+)")),
)

#: Segments a path is built of: the suffixes' words, names, arguments and odd ones.
SEGMENTS = ("p", "tags", "list", "manifests", "blobs", "uploads", "referrers", "", "a\nb")


def by_spec(path: str) -> RouteMatch:
    for route, pattern in SPEC_SHAPES:
        found = pattern.fullmatch(path)
        if found is not None:
            return RouteMatch(route, found["name"], found.groupdict().get("arg"))
    return UNKNOWN


def test_every_path_of_up_to_five_segments_names_the_endpoint_the_spec_shapes_give() -> None:
    compared = 0
    for count in range(1, 6):
        for segments in itertools.product(SEGMENTS, repeat=count):
            path = "/" + "/".join(segments)
            assert match_route(path) == by_spec(path), path
            compared += 1
    assert compared == sum(len(SEGMENTS) ** n for n in range(1, 6))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/", RouteMatch(OCIRoute.PING)),
        ("/v2", RouteMatch(OCIRoute.PING)),
        ("/v2/_catalog", RouteMatch(OCIRoute.CATALOG)),
        ("/v2/p/app/tags/list", RouteMatch(OCIRoute.TAGS, "p/app")),
        ("/v2/p/app/manifests/v1", RouteMatch(OCIRoute.MANIFEST, "p/app", "v1")),
        ("/v2/p/app/manifests/v1/", RouteMatch(OCIRoute.MANIFEST, "p/app", "v1")),
        (
            "/v2/p/a/b/manifests/sha256:" + "0" * 64,
            RouteMatch(OCIRoute.MANIFEST, "p/a/b", "sha256:" + "0" * 64),
        ),
        ("/v2/p/app/blobs/uploads/", RouteMatch(OCIRoute.UPLOADS, "p/app")),
        ("/v2/p/app/blobs/uploads", RouteMatch(OCIRoute.UPLOADS, "p/app")),
        ("/v2/p/app/blobs/uploads/u1", RouteMatch(OCIRoute.UPLOAD, "p/app", "u1")),
        ("/v2/p/app/blobs/sha256:ab", RouteMatch(OCIRoute.BLOB, "p/app", "sha256:ab")),
        ("/v2/p/app/referrers/sha256:ab", RouteMatch(OCIRoute.REFERRERS, "p/app", "sha256:ab")),
        # a repository may be named like an endpoint's words
        ("/v2/tags/list/tags/list", RouteMatch(OCIRoute.TAGS, "tags/list")),
        ("/v2/blobs/manifests/blobs/x", RouteMatch(OCIRoute.BLOB, "blobs/manifests", "x")),
        ("/v2/p/app/manifests/", UNKNOWN),
        ("/v2/manifests/v1", UNKNOWN),
        ("/v2/p/app/tags/list/x", UNKNOWN),
        ("/v3/p/app/manifests/v1", UNKNOWN),
        ("/v2/p\n/manifests/v1", UNKNOWN),
    ],
)
def test_request_paths(path: str, expected: RouteMatch) -> None:
    assert match_path(path) == expected


def test_the_audit_names_a_matched_request_as_it_names_its_path() -> None:
    """The pipeline's audit event reuses the route match; the result is the path's."""
    compared = 0
    for count in range(1, 5):
        for segments in itertools.product(SEGMENTS, repeat=count):
            for tail in ("", "/"):
                path = "/v2/" + "/".join(segments) + tail
                found = match_path(path)
                for method in ("GET", "PUT", "POST", "DELETE", "OPTIONS"):
                    named = classify_oci(method, path, found.route, found.name, found.arg)
                    assert named == classify(method, path), (method, path)
                    compared += 1
    assert compared == 5 * 2 * sum(len(SEGMENTS) ** n for n in range(1, 5))
