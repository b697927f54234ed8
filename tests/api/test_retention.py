"""Retention on each backend: the rules through the API, runs driven in-process."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
    return RetentionService(registry.metadata, registry.manifests, None)


POLICY = {
    "rules": [
        {
            "template": "latestPushedK",
            "n": 2,
            "repository": {"pattern": "app"},
            "tag": {"pattern": "v*"},
        },
        {"template": "always", "repository": {"pattern": "app"}, "tag": {"pattern": "keep"}},
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
    stray = oci.push_image(other, "tmp")
    assert oci.request("DELETE", f"/v2/{other}/manifests/tmp", other).status_code == 202

    dry = _service(oci).run(project, datetime.now(UTC), dry_run=True)
    by_digest = {item["digest"]: (item["action"], item["reason"]) for item in dry.items}
    assert by_digest == {
        pushed["v0"].digest: ("retain", "immutable tag 'v0' (immutability rule 1)"),
        pushed["v1"].digest: ("delete", "no rule retains it"),
        pushed["v2"].digest: ("retain", "retained by rule 1 (latestPushedK n=2)"),
        pushed["v3"].digest: ("retain", "retained by rule 1 (latestPushedK n=2)"),
        pushed["keep"].digest: ("retain", "retained by rule 2 (always)"),
        untagged.digest: ("delete", "no rule retains it"),
    }
    assert oci.request("HEAD", f"/v2/{repo}/manifests/v1", repo).status_code == 200

    report = _service(oci).run(project, datetime.now(UTC), dry_run=False)
    assert (report.retained, report.deleted) == (4, 2)
    for tag, status in [("v0", 200), ("v1", 404), ("v2", 200), ("v3", 200), ("keep", 200)]:
        assert oci.request("HEAD", f"/v2/{repo}/manifests/{tag}", repo).status_code == status
    assert oci.request("HEAD", f"/v2/{repo}/manifests/{untagged.digest}", repo).status_code == 404
    # No rule selects `other`: retention takes no action there, tagged or untagged.
    assert oci.request("HEAD", f"/v2/{other}/manifests/v9", other).status_code == 200
    assert _pulls(oci, other, elsewhere.digest)
    assert _pulls(oci, other, stray.digest)
    again = _service(oci).run(project, datetime.now(UTC), dry_run=False)
    assert (again.retained, again.deleted) == (4, 0)


def _pulls(oci: OCIClient, repo: str, digest: str) -> bool:
    return oci.request("GET", f"/v2/{repo}/manifests/{digest}", repo).status_code == 200


def _put_rules(oci: OCIClient, project: str, rules: list[dict[str, Any]]) -> None:
    url, auth = f"/api/v1/projects/{project}/retention", (AUTH_USER, oci.password)
    response = oci.client.put(url, json={"rules": rules}, auth=auth)
    assert response.status_code == 200, response.text


def _run(oci: OCIClient, project: str, *, dry_run: bool) -> dict[str, str]:
    report = _service(oci).run(project, datetime.now(UTC), dry_run=dry_run)
    return {item["digest"]: item["action"] for item in report.items}


def test_one_rule_on_one_repository_leaves_every_other_repository_untouched(
    oci: OCIClient,
) -> None:
    """The reported case: `latestPushedK n=1` on `rtest` must not touch `app`."""
    project = _project(oci)
    rtest, app, nested = f"{project}/rtest", f"{project}/app", f"{project}/team/rtest"
    dropped = oci.push_image(rtest, "a")
    kept = oci.push_image(rtest, "b")  # the newest push in rtest
    images = [oci.push_image(app, f"v{i}") for i in range(3)]
    untagged = oci.push_image(app, "tmp")
    assert oci.request("DELETE", f"/v2/{app}/manifests/tmp", app).status_code == 202
    deep = [oci.push_image(nested, "x"), oci.push_image(nested, "y")]
    _put_rules(
        oci, project, [{"template": "latestPushedK", "n": 1, "repository": {"pattern": "rtest"}}]
    )

    planned = _run(oci, project, dry_run=True)
    assert planned == {kept.digest: "retain", dropped.digest: "delete"}
    assert _run(oci, project, dry_run=False) == planned
    assert _pulls(oci, rtest, kept.digest)
    assert not _pulls(oci, rtest, dropped.digest)
    for image in [*images, untagged]:
        assert _pulls(oci, app, image.digest)
    for image in deep:
        assert _pulls(oci, nested, image.digest)


def test_excluding_selectors_pick_the_complement(oci: OCIClient) -> None:
    project = _project(oci)
    app, web = f"{project}/app", f"{project}/web"
    spared = [oci.push_image(app, "old"), oci.push_image(app, "new")]
    web_old, web_dev, web_new = (oci.push_image(web, tag) for tag in ("v1", "dev-1", "v2"))
    rules: list[dict[str, Any]] = [
        {
            "template": "latestPushedK",
            "n": 1,
            "repository": {"pattern": "app", "decoration": "excludes"},
            "tag": {"pattern": "dev-*", "decoration": "excludes"},
        }
    ]
    _put_rules(oci, project, rules)
    expected = {web_old.digest: "delete", web_dev.digest: "delete", web_new.digest: "retain"}
    assert _run(oci, project, dry_run=True) == expected
    assert _run(oci, project, dry_run=False) == expected
    assert [_pulls(oci, web, i.digest) for i in (web_old, web_dev, web_new)] == [
        False,
        False,
        True,
    ]
    assert all(_pulls(oci, app, image.digest) for image in spared)


def test_two_rules_on_one_repository_or_together(oci: OCIClient) -> None:
    project = _project(oci)
    app, other = f"{project}/app", f"{project}/other"
    stable, old, newest = (oci.push_image(app, tag) for tag in ("stable", "v1", "v2"))
    untouched = oci.push_image(other, "v1")
    rules: list[dict[str, Any]] = [
        {"template": "latestPushedK", "n": 1, "repository": {"pattern": "app"}},
        {"template": "always", "repository": {"pattern": "app"}, "tag": {"pattern": "stable"}},
    ]
    _put_rules(oci, project, rules)
    expected = {stable.digest: "retain", old.digest: "delete", newest.digest: "retain"}
    assert _run(oci, project, dry_run=False) == expected
    assert [_pulls(oci, app, i.digest) for i in (stable, old, newest)] == [True, False, True]
    assert _pulls(oci, other, untouched.digest)


def test_retention_run_api_queues_a_run(oci: OCIClient) -> None:
    project = _project(oci)
    auth = (AUTH_USER, oci.password)
    url = f"/api/v1/projects/{project}/retention/runs"
    assert oci.client.post(url, json={"dry_run": True}).status_code == 401
    created = oci.client.post(url, json={"dry_run": True}, auth=auth)
    assert created.status_code == 202, created.text
    run = oci.client.get(f"{url}/{created.json()['id']}", auth=auth).json()
    assert (run["state"], run["dry_run"]) == ("queued", True)
    history = oci.client.get(url, auth=auth).json()["items"]
    assert [entry["id"] for entry in history] == [created.json()["id"]]
    missing = oci.client.post("/api/v1/projects/nope-x/retention/runs", json={}, auth=auth)
    assert missing.status_code == 404
