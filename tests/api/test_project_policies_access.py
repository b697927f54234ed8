"""Who may manage a project's policies, quota, repositories and tags, on each backend.

Project admins manage their own project's immutability and retention rules and run
retention; developers manage retention but not immutability; guests only read the
quota; another project's admin gets the answer a nonexistent project gets.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.context import Registry
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient

Auth = tuple[str, str]
IMMUTABLE = {"rules": [{"repository": {"pattern": "**"}, "tag": {"pattern": "v*"}}]}
RETAIN = {"rules": [{"template": "latestPushedK", "n": 1}]}


@pytest.fixture
def api(oci: OCIClient) -> Api:
    return Api(oci.client, (oci.username, oci.password))


def _with_role(api: Api, project: str, role: str) -> Auth:
    user = api.user()
    api.member(project, role, user=user[0])
    return user


def _problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def _policy_calls(client: httpx.Client, project: str, auth: Auth) -> dict[str, httpx.Response]:
    base = f"/api/v1/projects/{project}"
    return {
        "read immutability": client.get(f"{base}/immutability", auth=auth),
        "write immutability": client.put(f"{base}/immutability", json=IMMUTABLE, auth=auth),
        "read retention": client.get(f"{base}/retention", auth=auth),
        "write retention": client.put(f"{base}/retention", json=RETAIN, auth=auth),
        "dry run": client.post(f"{base}/retention/runs", json={"dry_run": True}, auth=auth),
        "run history": client.get(f"{base}/retention/runs", auth=auth),
    }


def _statuses(client: httpx.Client, project: str, auth: Auth) -> dict[str, int]:
    return {what: r.status_code for what, r in _policy_calls(client, project, auth).items()}


def test_project_admin_manages_rules_and_runs_retention(api: Api) -> None:
    project = api.project()
    admin = _with_role(api, project, "admin")
    assert _statuses(api.client, project, admin) == {
        "read immutability": 200,
        "write immutability": 200,
        "read retention": 200,
        "write retention": 200,
        "dry run": 202,
        "run history": 200,
    }
    base = f"/api/v1/projects/{project}"
    rules = api.client.get(f"{base}/immutability", auth=admin).json()["rules"]
    assert [rule["tag"]["pattern"] for rule in rules] == ["v*"]
    run = api.client.post(f"{base}/retention/runs", json={"dry_run": True}, auth=admin).json()
    assert run["dry_run"] is True
    assert run["state"] == "queued"
    history = api.client.get(f"{base}/retention/runs", auth=admin).json()
    assert run["id"] in [item["id"] for item in history["items"]]
    read = api.client.get(f"{base}/retention/runs/{run['id']}", auth=admin)
    assert read.status_code == 200
    assert read.json()["id"] == run["id"]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("maintainer", {"immutability", "retention"}),
        ("developer", {"retention"}),
        ("guest", set()),
        ("limited-guest", set()),
    ],
)
def test_roles_follow_the_permission_matrix(api: Api, role: str, allowed: set[str]) -> None:
    project = api.project()
    member = _with_role(api, project, role)
    statuses = _statuses(api.client, project, member)
    for what, status in statuses.items():
        kind = "immutability" if "immutability" in what else "retention"
        assert (status < 400) == (kind in allowed), (what, status)
        assert status in (200, 202, 403), (what, status)
    assert api.client.get(f"/api/v1/projects/{project}/immutability").status_code == 404


def test_denied_writes_change_nothing(api: Api) -> None:
    project = api.project()
    developer = _with_role(api, project, "developer")
    base = f"/api/v1/projects/{project}/immutability"
    refused = api.client.put(base, json=IMMUTABLE, auth=developer)
    assert refused.status_code == 403
    assert _problem(refused)["status"] == 403
    assert api.client.get(base, auth=api.admin).json()["rules"] == []


def test_another_projects_admin_is_answered_like_a_missing_project(api: Api) -> None:
    project, elsewhere = api.project(), api.project()
    outsider = _with_role(api, elsewhere, "admin")
    hidden = _policy_calls(api.client, project, outsider)
    missing = _policy_calls(api.client, "nosuchproject0", outsider)
    for what, response in hidden.items():
        assert response.status_code == 404, what
        gone = missing[what]
        assert gone.status_code == 404, what
        assert _problem(response)["title"] == _problem(gone)["title"]
        assert _problem(response)["type"] == _problem(gone)["type"]
    quota = api.client.get(f"/api/v1/projects/{project}/quota", auth=outsider)
    assert quota.status_code == 404
    tags = api.client.get(f"/api/v1/projects/{project}/repositories/app/tags", auth=outsider)
    assert tags.status_code == 404
    assert api.client.get(f"/api/v1/projects/{project}/immutability", auth=api.admin).json() == {
        "rules": []
    }


def test_guest_reads_the_quota_only_system_admins_set_it(api: Api, oci: OCIClient) -> None:
    project = api.project()
    guest, admin = _with_role(api, project, "guest"), _with_role(api, project, "admin")
    pushed = oci.push_image(f"{project}/app", "v1")
    base = f"/api/v1/projects/{project}/quota"
    read = api.client.get(base, auth=guest)
    assert read.status_code == 200, read.text
    assert read.json()["used_artifacts"] == 1
    assert read.json()["used_bytes"] >= len(pushed.payload)
    assert read.json()["bytes"] is None
    assert api.client.put(base, json={"bytes": 10}, auth=admin).status_code == 403
    assert api.client.put(base, json={"bytes": 10}, auth=guest).status_code == 403
    assert api.client.put(base, json={"bytes": 10}).status_code == 401
    assert api.client.get(base, auth=guest).json()["bytes"] is None
    set_by_admin = api.client.put(base, json={"bytes": 10**9, "artifacts": 5}, auth=api.admin)
    assert set_by_admin.status_code == 200
    assert api.client.get(base, auth=guest).json()["artifacts"] == 5


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _tag_events(oci: OCIClient, repo: str) -> list[tuple[str | None, str | None]]:
    with _registry(oci).metadata.read() as session:
        pending = session.outbox.pending(100_000)
    return [(e.digest, e.tag) for e in pending if e.repository == repo and e.kind == "tag.deleted"]


def _tags(client: httpx.Client, project: str, path: str, auth: Auth) -> list[str]:
    response = client.get(f"/api/v1/projects/{project}/repositories/{path}/tags", auth=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_tag_deletion_through_the_management_api(api: Api, oci: OCIClient) -> None:
    project = api.project()
    repo = f"{project}/team/app"
    admin, developer = _with_role(api, project, "admin"), _with_role(api, project, "developer")
    pushed = oci.push_image(repo, "latest")
    oci.put_manifest(repo, "v1", oci.image(repo))
    base = f"/api/v1/projects/{project}/repositories/team/app/tags"
    assert api.client.delete(f"{base}/latest", auth=developer).status_code == 403
    assert sorted(_tags(api.client, project, "team/app", developer)) == ["latest", "v1"]
    deleted = api.client.delete(f"{base}/latest", auth=admin, headers={"X-Request-ID": "rm-1"})
    assert deleted.status_code == 204, deleted.text
    assert _tags(api.client, project, "team/app", admin) == ["v1"]
    assert _tag_events(oci, repo) == [(pushed.digest, "latest")]
    by_digest = oci.request("GET", f"/v2/{repo}/manifests/{pushed.digest}", repo)
    assert by_digest.content == pushed.payload
    assert oci.request("GET", f"/v2/{repo}/manifests/latest", repo).status_code == 404
    again = api.client.delete(f"{base}/latest", auth=admin)
    assert again.status_code == 404
    assert _problem(again)["status"] == 404
    audit = api.client.get(
        f"/api/v1/projects/{project}/audit", params={"limit": 1000}, auth=api.admin
    )
    recorded = [e for e in audit.json()["items"] if e["request_id"] == "rm-1"]
    assert [(e["actor"], e["action"], e["status"], e["resource"]) for e in recorded] == [
        (admin[0], "delete_tag", 204, f"{project}/team/app:latest")
    ]


def test_immutable_tag_is_refused_and_nothing_is_lost(api: Api, oci: OCIClient) -> None:
    project = api.project()
    repo = f"{project}/app"
    pushed = oci.push_image(repo, "v1")
    put = api.client.put(f"/api/v1/projects/{project}/immutability", json=IMMUTABLE, auth=api.admin)
    assert put.status_code == 200
    refused = api.client.delete(
        f"/api/v1/projects/{project}/repositories/app/tags/v1", auth=api.admin
    )
    assert refused.status_code == 403
    problem = _problem(refused)
    assert problem["title"] == "DENIED"
    assert "immutability rule 1" in problem["detail"]
    oci_refused = oci.request("DELETE", f"/v2/{repo}/manifests/v1", repo)
    assert oci_refused.json()["errors"][0]["message"] == problem["detail"]
    assert oci.request("GET", f"/v2/{repo}/manifests/v1", repo).content == pushed.payload
    assert _tags(api.client, project, "app", api.admin) == ["v1"]
    assert _tag_events(oci, repo) == []


def test_repositories_and_tags_are_listed_in_pages(api: Api, oci: OCIClient) -> None:
    project, other = api.project(), api.project()
    guest = _with_role(api, project, "guest")
    for path in ("a", "b/c", "d"):
        oci.push_image(f"{project}/{path}", "t1")
    oci.push_image(f"{other}/x", "t1")
    oci.put_manifest(f"{project}/a", "t2", oci.image(f"{project}/a"))
    oci.put_manifest(f"{project}/a", "t3", oci.image(f"{project}/a"))
    base = f"/api/v1/projects/{project}/repositories"
    first = api.client.get(base, params={"limit": 2}, auth=guest).json()
    assert first == {
        "items": [{"name": f"{project}/a"}, {"name": f"{project}/b/c"}],
        "next": (f"{project}/b/c"),
    }
    rest = api.client.get(base, params={"limit": 2, "last": first["next"]}, auth=guest).json()
    assert rest == {"items": [{"name": f"{project}/d"}], "next": None}
    page = api.client.get(f"{base}/a/tags", params={"limit": 2}, auth=guest).json()
    assert page == {"items": ["t1", "t2"], "next": "t2"}
    tail = api.client.get(f"{base}/a/tags", params={"last": "t2"}, auth=guest).json()
    assert tail == {"items": ["t3"], "next": None}
    assert api.client.get(f"{base}/nope/tags", auth=guest).status_code == 404
    assert api.client.get(f"/api/v1/projects/{other}/repositories", auth=guest).status_code == 404
