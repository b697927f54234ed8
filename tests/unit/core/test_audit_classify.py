"""How the audit log names the action and resource of a request."""

from __future__ import annotations

import pytest

from core.audit import classify


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/", ("ping", "registry", None)),
        ("GET", "/v2/_catalog", ("catalog", "registry:catalog", None)),
        ("GET", "/v2/p1/app/manifests/v1", ("pull_manifest", "p1/app:v1", "p1")),
        ("PUT", "/v2/p1/team/app/manifests/v1", ("push_manifest", "p1/team/app:v1", "p1")),
        ("POST", "/v2/p1/app/blobs/uploads/", ("push_blob", "p1/app", "p1")),
        ("GET", "/auth/token", ("token", "/auth/token", None)),
        ("GET", "/api/v1/projects", ("list_project", "/api/v1/projects", None)),
        ("DELETE", "/api/v1/projects/p1", ("delete_project", "/api/v1/projects/p1", "p1")),
        (
            "GET",
            "/api/v1/projects/p1/retention/runs",
            ("read_retention", "/api/v1/projects/p1/retention/runs", "p1"),
        ),
        (
            "POST",
            "/api/v1/trusted-issuers",
            ("create_trusted_issuer", "/api/v1/trusted-issuers", None),
        ),
        (
            "GET",
            "/api/v1/projects/p1/policies",
            ("list_policy", "/api/v1/projects/p1/policies", "p1"),
        ),
        ("GET", "/api/v1/projects/p1/repositories", ("list_repository", "p1", "p1")),
        (
            "GET",
            "/api/v1/projects/p1/repositories/team/app/tags",
            ("list_tag", "p1/team/app", "p1"),
        ),
        (
            "DELETE",
            "/api/v1/projects/p1/repositories/team/app/tags/v1",
            ("delete_tag", "p1/team/app:v1", "p1"),
        ),
        (
            "DELETE",
            "/api/v1/projects/p1/repositories/tags/tags/tags",
            ("delete_tag", "p1/tags:tags", "p1"),
        ),
        (
            "GET",
            "/api/v1/projects/p1/repositories/tags/tags/tags",
            ("list_tag", "p1/tags/tags", "p1"),
        ),
    ],
)
def test_requests_are_named_for_what_they_do(
    method: str, path: str, expected: tuple[str, str, str | None]
) -> None:
    assert classify(method, path) == expected
