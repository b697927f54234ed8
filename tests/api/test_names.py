"""Repository names and digests are validated at every entry point, never normalised.

Robot permissions, token scopes and ``/v2`` routes refuse names outside the distribution
grammar; a traversal-style digest in a ``/v2`` path is ``DIGEST_INVALID``.
"""

from __future__ import annotations

import pytest

from tests.api.identity_helpers import Api, token_access
from tests.api.oci import OCIClient

BAD_NAMES = ["p1//app", "p1/../p2/app", "p1/./app", "p1/app/", "P1/app", "p1/-app", "solo"]


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


@pytest.mark.parametrize("pattern", ["../p2/app", "a//b", "app/", "/app", "App", "a/../b", "[ab]"])
def test_robot_permission_patterns_follow_the_name_grammar(api: Api, pattern: str) -> None:
    project = api.project()
    response = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={"name": "r1", "permissions": [{"repository": pattern, "actions": ["pull"]}]},
        auth=api.admin,
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "permissions.0.repository"
    listed = api.client.get(f"/api/v1/projects/{project}/robots", auth=api.admin).json()
    assert listed["items"] == []


def test_system_robot_patterns_are_validated_too(api: Api) -> None:
    response = api.client.post(
        "/api/v1/robots",
        json={"name": "sysbad", "permissions": [{"repository": "p1/../p2/*", "actions": ["pull"]}]},
        auth=api.admin,
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["pointer"] == "/permissions/0/repository"


@pytest.mark.parametrize("pattern", ["*", "app", "team/*", "app-?", "*/api"])
def test_good_robot_patterns_are_stored_as_given(api: Api, pattern: str) -> None:
    project = api.project()
    response = api.client.post(
        f"/api/v1/projects/{project}/robots",
        json={"name": "r1", "permissions": [{"repository": pattern, "actions": ["pull"]}]},
        auth=api.admin,
    )
    assert response.status_code == 201, response.text
    assert response.json()["permissions"][0]["repository"] == f"{project}/{pattern}"


@pytest.mark.parametrize("suffix", ["/app", "//app", "/../x/app", "/app/", "/App"])
def test_token_service_grants_only_valid_names(api: Api, suffix: str) -> None:
    project = api.project()
    access = token_access(api.client, api.admin, f"repository:{project}{suffix}:pull,push")
    if suffix == "/app":
        assert [entry["name"] for entry in access] == [f"{project}/app"]
    else:
        assert access == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_v2_refuses_unnormalised_names(oci: OCIClient, name: str) -> None:
    token = oci.token("repository:p1/app:pull")
    # NOTE: httpx resolves raw dot segments itself; encoded, they reach the server as sent.
    path = "/".join("%2E" * len(part) if part in (".", "..") else part for part in name.split("/"))
    response = oci.client.get(f"/v2/{path}/tags/list", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "NAME_INVALID"


def test_v2_double_slash_is_not_served_as_the_normal_name(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    project, path = repo.split("/", 1)
    plain = oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
    assert plain.status_code == 200
    for method in ("GET", "HEAD", "DELETE"):
        doubled = oci.request(method, f"/v2/{project}//{path}/manifests/{pushed.digest}", repo)
        assert doubled.status_code == 400, (method, doubled.text)
    tags = oci.request("GET", f"/v2/{project}//{path}/tags/list", repo)
    assert tags.status_code == 400
    assert tags.json()["errors"][0]["code"] == "NAME_INVALID"
    assert oci.request("GET", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 200


@pytest.mark.parametrize("endpoint", ["blobs", "manifests", "referrers"])
@pytest.mark.parametrize(
    "digest", ["sha256:..%2F..%2Fetc%2Fpasswd", "sha256:../../etc/passwd", "sha256:a/b"]
)
def test_traversal_digests_are_digest_invalid(
    oci: OCIClient, repo: str, endpoint: str, digest: str
) -> None:
    oci.push_image(repo, "t")
    # NOTE: httpx would resolve raw `..` segments itself; the encoded form keeps them.
    sent = digest.replace("/", "%2F") if ".." in digest else digest
    response = oci.request("GET", f"/v2/{repo}/{endpoint}/{sent}", repo)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_unknown_endpoints_still_answer_404(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "t")
    response = oci.request("GET", f"/v2/{repo}/nothing/here", repo)
    assert response.status_code == 404


def test_management_routes_refuse_unnormalised_repository_paths(oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "v1")
    project, path = repo.split("/", 1)
    auth = (oci.username, oci.password)
    base = f"/api/v1/projects/{project}/repositories"
    assert oci.client.get(f"{base}/{path}/tags/v1", auth=auth).status_code == 200
    for url in (f"{base}/{path}//tags/v1", f"{base}//{path}/tags", f"{base}/{path}/%2E%2E/x/tags"):
        response = oci.client.get(url, auth=auth)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["errors"][0]["field"] == "repository"
    deleted = oci.client.delete(f"{base}//{path}/tags/v1", auth=auth)
    assert deleted.status_code == 400
    assert oci.client.get(f"{base}/{path}/tags/v1", auth=auth).status_code == 200
