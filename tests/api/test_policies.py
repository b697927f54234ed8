"""Tag immutability and quotas through the OCI API, on each backend."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from adapters.clock import SystemClock
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from tests.api.oci import OCIClient, digest_of, unique_project


def _project(oci: OCIClient) -> str:
    project = unique_project()
    response = oci.client.post(
        "/api/v1/projects", json={"name": project}, auth=("admin", oci.password)
    )
    assert response.status_code == 201, response.text
    return project


def _put(oci: OCIClient, project: str, what: str, body: object) -> httpx.Response:
    return oci.client.put(
        f"/api/v1/projects/{project}/{what}", json=body, auth=("admin", oci.password)
    )


def _quota(oci: OCIClient, project: str) -> dict[str, int | None]:
    response = oci.client.get(f"/api/v1/projects/{project}/quota", auth=("admin", oci.password))
    assert response.status_code == 200, response.text
    body: dict[str, int | None] = response.json()
    return body


def _error(response: httpx.Response) -> tuple[str, str]:
    error = response.json()["errors"][0]
    return error["code"], error["message"]


RULES = {
    "rules": [
        {"repository": {"pattern": "release/**"}, "tag": {"pattern": "v*"}},
        {"tag": {"pattern": "{stable,lts}"}},
    ]
}


def test_immutability_rules_guard_every_tag_write(oci: OCIClient) -> None:
    project = _project(oci)
    assert _put(oci, project, "immutability", RULES).status_code == 200
    read = oci.client.get(f"/api/v1/projects/{project}/immutability", auth=("admin", oci.password))
    assert [rule["tag"]["pattern"] for rule in read.json()["rules"]] == ["v*", "{stable,lts}"]
    repo, other = f"{project}/release/app", f"{project}/dev/app"
    first = oci.push_image(repo, "v1")
    moved = oci.put_manifest(repo, "v1", oci.image(repo))
    assert moved.status_code == 403
    code, message = _error(moved)
    assert code == "DENIED"
    assert "immutability rule 1" in message
    same = oci.put_manifest(repo, "v1", json.loads(first.payload))
    assert same.status_code == 201  # the same digest again changes nothing
    assert oci.request("DELETE", f"/v2/{repo}/manifests/v1", repo).status_code == 403
    by_digest = oci.request("DELETE", f"/v2/{repo}/manifests/{first.digest}", repo)
    assert by_digest.status_code == 403
    oci.push_image(other, "v1")
    assert oci.put_manifest(other, "v1", oci.image(other)).status_code == 201
    oci.push_image(other, "stable")
    assert _error(oci.put_manifest(other, "stable", oci.image(other)))[1].count("rule 2") == 1
    oci.push_image(repo, "dev-1")
    assert oci.request("DELETE", f"/v2/{repo}/manifests/dev-1", repo).status_code == 202


def test_tag_first_push_is_allowed_and_reads_stay_open(oci: OCIClient) -> None:
    project = _project(oci)
    assert _put(oci, project, "immutability", RULES).status_code == 200
    repo = f"{project}/release/app"
    pushed = oci.push_image(repo, "v2")
    assert oci.request("GET", f"/v2/{repo}/manifests/v2", repo).content == pushed.payload
    assert _put(oci, project, "immutability", {"rules": []}).status_code == 200
    assert oci.put_manifest(repo, "v2", oci.image(repo)).status_code == 201


def test_quota_usage_is_exact_through_every_step(oci: OCIClient) -> None:
    """DI-05: usage = distinct linked blob bytes + manifest bytes after every step."""
    project = _project(oci)
    repo, second = f"{project}/app", f"{project}/other"
    layer = uuid.uuid4().bytes * 40
    assert _quota(oci, project)["used_bytes"] == 0
    pushed = oci.push_image(repo, "v1", layers=[layer])
    manifest = json.loads(pushed.payload)
    config_size = manifest["config"]["size"]
    expected = len(layer) + config_size + len(pushed.payload)
    assert _quota(oci, project)["used_bytes"] == expected
    oci.push_blob(repo, layer)  # duplicate blob
    assert _quota(oci, project)["used_bytes"] == expected
    location = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    oci.request("PATCH", location, repo, content=b"aborted")
    oci.request("DELETE", location, repo)  # aborted upload
    assert _quota(oci, project)["used_bytes"] == expected
    bad = oci.put_manifest(repo, "bad", {"schemaVersion": 2, "layers": "nope"})
    assert bad.status_code == 400  # rejected manifest
    assert _quota(oci, project)["used_bytes"] == expected
    token = oci.token(f"repository:{second}:pull,push", f"repository:{repo}:pull")
    mount = oci.client.post(
        f"/v2/{second}/blobs/uploads/?mount={digest_of(layer)}&from={repo}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert mount.status_code == 201  # mount inside the project: same blob, counted once
    assert _quota(oci, project)["used_bytes"] == expected
    assert oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 202
    assert _quota(oci, project)["used_bytes"] == expected - len(pushed.payload)
    _collect(oci)
    assert _quota(oci, project) == {
        "bytes": None,
        "artifacts": None,
        "used_bytes": 0,
        "used_artifacts": 0,
    }


def _collect(oci: OCIClient) -> None:
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    collector = GarbageCollector(
        registry.metadata, registry.store, ChangeRecorder(3600, 0.85, SystemClock())
    )
    due = datetime.now(UTC) + timedelta(seconds=1)
    for _ in range(50):
        batch = collector.collect_blobs(due, 1000, False)
        while collector.finish_tombstones(1000):
            pass
        if batch.reviewed == 0:
            return


def test_quota_denies_pushes_over_the_limit(oci: OCIClient) -> None:
    project = _project(oci)
    repo = f"{project}/app"
    limits = _put(oci, project, "quota", {"bytes": 4000, "artifacts": 1})
    assert limits.json()["bytes"] == 4000
    oci.push_image(repo, "v1", layers=[b"x" * 1000])
    too_big = oci.request(
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest_of(b'y' * 5000)}",
        repo,
        content=b"y" * 5000,
    )
    assert too_big.status_code == 403
    code, message = _error(too_big)
    assert code == "DENIED"
    assert "storage quota of 4000 bytes" in message
    second = oci.put_manifest(repo, "v2", oci.image(repo, layers=[b"z" * 10]))
    assert second.status_code == 403
    assert "artifact quota of 1" in _error(second)[1]
    assert oci.request("HEAD", f"/v2/{repo}/manifests/v2", repo).status_code == 404
    assert _quota(oci, project)["used_artifacts"] == 1


def test_concurrent_pushes_cannot_overshoot_the_quota(oci: OCIClient) -> None:
    project = _project(oci)
    repo = f"{project}/app"
    assert _put(oci, project, "quota", {"bytes": 10_000}).status_code == 200
    statuses: list[int] = []

    def push() -> None:
        data = uuid.uuid4().bytes * 125  # 2000 bytes
        response = oci.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}", repo, content=data
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=push) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [201] * 5 + [403] * 5
    assert _quota(oci, project)["used_bytes"] == 10_000


def test_reconciliation_reports_usage_warnings_and_storage_drift(oci: OCIClient) -> None:
    from core.digests import Digest
    from core.names import RepositoryName
    from core.services.reconcile import QuotaReconciler

    project = _project(oci)
    repo = f"{project}/app"
    pushed = oci.push_image(repo, "v1", layers=[b"l" * 3000])
    assert _put(oci, project, "quota", {"bytes": 3500}).status_code == 200
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    reconciler = QuotaReconciler(registry.metadata, registry.store, 0.85)
    entry = next(e for e in reconciler.run() if e["project"] == project)
    used = _quota(oci, project)["used_bytes"]
    assert (entry["used_bytes"], entry["warning"], entry["drift"]) == (used, True, [])
    repository = registry.repositories.find(RepositoryName.parse(repo))
    registry.store.delete_blob(repository.storage_id, Digest.parse(pushed.blobs[0]))
    entry = next(e for e in reconciler.run() if e["project"] == project)
    assert [(d["digest"], d["stored_size"]) for d in entry["drift"]] == [(pushed.blobs[0], None)]
