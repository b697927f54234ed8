"""Retention on each backend: the rules through the API, runs driven in-process."""

from __future__ import annotations

from datetime import UTC, datetime

from core.services.retention import RetentionService
from tests.api.oci import OCIClient, unique_project

AUTH_USER = "admin"


def _project(oci: OCIClient) -> str:
    project = unique_project()
    auth = (AUTH_USER, oci.password)
    assert oci.client.post("/api/v1/projects", json={"name": project}, auth=auth).status_code == 201
    return project


def _service(oci: OCIClient) -> RetentionService:
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return RetentionService(registry.metadata, registry.manifests)


POLICY = {
    "rules": [
        {
            "template": "latestPushedK",
            "n": 2,
            "repository": {"pattern": "app"},
            "tag": {"pattern": "v*"},
        },
        {"template": "always", "tag": {"pattern": "keep"}},
    ]
}


def test_retention_rules_dry_run_and_run(oci: OCIClient) -> None:
    project = _project(oci)
    auth = (AUTH_USER, oci.password)
    put = oci.client.put(f"/api/v1/projects/{project}/retention", json=POLICY, auth=auth)
    assert put.status_code == 200, put.text
    rules = oci.client.get(f"/api/v1/projects/{project}/retention", auth=auth).json()["rules"]
    assert [rule["template"] for rule in rules] == ["latestPushedK", "always"]
    immutable = {"rules": [{"tag": {"pattern": "v0"}}]}
    assert (
        oci.client.put(
            f"/api/v1/projects/{project}/immutability", json=immutable, auth=auth
        ).status_code
        == 200
    )
    repo, other = f"{project}/app", f"{project}/other"
    pushed = {tag: oci.push_image(repo, tag) for tag in ["v0", "v1", "v2", "v3", "keep"]}
    untagged = oci.push_image(repo, "tmp")
    assert oci.request("DELETE", f"/v2/{repo}/manifests/tmp", repo).status_code == 202
    elsewhere = oci.push_image(other, "v9")

    dry = _service(oci).run(project, datetime.now(UTC), dry_run=True)
    by_digest = {item["digest"]: (item["action"], item["reason"]) for item in dry.items}
    assert by_digest == {
        pushed["v0"].digest: ("retain", "immutable tag 'v0' (immutability rule 1)"),
        pushed["v1"].digest: ("delete", "no rule retains it"),
        pushed["v2"].digest: ("retain", "retained by rule 1 (latestPushedK n=2)"),
        pushed["v3"].digest: ("retain", "retained by rule 1 (latestPushedK n=2)"),
        pushed["keep"].digest: ("retain", "retained by rule 2 (always)"),
        untagged.digest: ("delete", "no rule retains it"),
        elsewhere.digest: ("delete", "no rule retains it"),
    }
    assert oci.request("HEAD", f"/v2/{repo}/manifests/v1", repo).status_code == 200

    report = _service(oci).run(project, datetime.now(UTC), dry_run=False)
    assert (report.retained, report.deleted) == (4, 3)
    for tag, status in [("v0", 200), ("v1", 404), ("v2", 200), ("v3", 200), ("keep", 200)]:
        assert oci.request("HEAD", f"/v2/{repo}/manifests/{tag}", repo).status_code == status
    assert oci.request("HEAD", f"/v2/{repo}/manifests/{untagged.digest}", repo).status_code == 404
    assert oci.request("HEAD", f"/v2/{other}/manifests/v9", other).status_code == 404
    again = _service(oci).run(project, datetime.now(UTC), dry_run=False)
    assert (again.retained, again.deleted) == (4, 0)


def test_retention_run_api_queues_a_run(oci: OCIClient) -> None:
    project = _project(oci)
    auth = (AUTH_USER, oci.password)
    url = f"/api/v1/projects/{project}/retention/runs"
    assert oci.client.post(url, json={"dry_run": True}).status_code == 401
    created = oci.client.post(url, json={"dry_run": True}, auth=auth)
    assert created.status_code == 202, created.text
    run = oci.client.get(f"{url}/{created.json()['id']}", auth=auth).json()
    assert (run["state"], run["dry_run"]) == ("queued", True)
    history = oci.client.get(url, auth=auth).json()
    assert [entry["id"] for entry in history] == [created.json()["id"]]
    missing = oci.client.post("/api/v1/projects/nope-x/retention/runs", json={}, auth=auth)
    assert missing.status_code == 404
