"""Outbox events and online GC on each backend (the collector driven in-process)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.clock import SystemClock
from api.context import Registry
from core.digests import Digest
from core.names import RepositoryName
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from core.services.gc_report import GcReport
from tests.api.oci import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    OCIClient,
    digest_of,
    unique_project,
)

FUTURE = timedelta(hours=1)


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _collector(oci: OCIClient) -> GarbageCollector:
    registry = _registry(oci)
    return GarbageCollector(
        registry.metadata, registry.store, ChangeRecorder(3600, 0.85, SystemClock())
    )


def _gc(oci: OCIClient, *, delay: timedelta = timedelta(0), untagged: bool = True) -> GcReport:
    """Run every GC step to completion with review delay ``delay``."""
    collector, total = _collector(oci), GcReport()
    for _ in range(100):
        due = datetime.now(UTC) - delay
        batch = collector.collect_manifests(due, 100, False) if untagged else GcReport()
        batch.add(collector.collect_blobs(due, 100, False))
        while collector.finish_tombstones(100):
            pass
        total.add(batch)
        if batch.reviewed == 0:
            return total
    raise AssertionError("GC did not settle")


def _new_repo(oci: OCIClient) -> str:
    project = unique_project()
    response = oci.client.post(
        "/api/v1/projects", json={"name": project}, auth=("admin", oci.password)
    )
    assert response.status_code == 201, response.text
    return f"{project}/app"


def _stored(oci: OCIClient, repo: str, digest: str) -> bool:
    registry = _registry(oci)
    repository = registry.repositories.find(RepositoryName.parse(repo))
    assert repository is not None
    return registry.store.stat_blob(repository.storage_id, Digest.parse(digest)) is not None


def _events(oci: OCIClient, repo: str) -> list[tuple[str, str | None, str | None]]:
    with _registry(oci).metadata.read() as session:
        pending = session.outbox.pending(100_000)
    return [(e.kind, e.digest, e.tag) for e in pending if e.repository == repo]


def test_every_change_writes_an_outbox_event(oci: OCIClient) -> None:
    repo = _new_repo(oci)
    first = oci.push_image(repo, "v1")
    second = oci.push_image(repo, "v1")
    assert oci.request("DELETE", f"/v2/{repo}/manifests/v1", repo).status_code == 202
    deleted = oci.request("DELETE", f"/v2/{repo}/manifests/{first.digest}", repo)
    assert deleted.status_code == 202
    blob = oci.push_blob(repo, b"loose blob")
    assert oci.request("DELETE", f"/v2/{repo}/blobs/{blob}", repo).status_code == 202
    assert _events(oci, repo) == [
        ("manifest.pushed", first.digest, None),
        ("tag.created", first.digest, "v1"),
        ("manifest.pushed", second.digest, None),
        ("tag.moved", second.digest, "v1"),
        ("tag.deleted", second.digest, "v1"),
        ("manifest.deleted", first.digest, None),
        ("blob.unlinked", blob, None),
    ]


def test_deleted_image_is_gone_at_once_and_collected_later(oci: OCIClient) -> None:
    """GC-05: delete is immediate; GC removes the blobs; a re-push works."""
    repo = _new_repo(oci)
    layer = uuid.uuid4().bytes * 100
    pushed = oci.push_image(repo, "v1", layers=[layer])
    assert oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 202
    assert oci.request("HEAD", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 404
    assert _stored(oci, repo, digest_of(layer))
    report = _gc(oci)
    assert report.deleted >= 2
    assert not _stored(oci, repo, digest_of(layer))
    assert oci.request("HEAD", f"/v2/{repo}/blobs/{digest_of(layer)}", repo).status_code == 404
    again = oci.push_image(repo, "v1", layers=[layer])
    blob = oci.request("GET", f"/v2/{repo}/blobs/{digest_of(layer)}", repo)
    assert blob.status_code == 200
    assert blob.content == layer
    assert oci.request("GET", f"/v2/{repo}/manifests/v1", repo).content == again.payload


def test_grace_window_protects_blobs_and_uploads_in_progress(oci: OCIClient) -> None:
    """GC-02: an unreferenced blob survives inside the window; an open upload survives GC."""
    repo = _new_repo(oci)
    manifest = oci.image(repo)
    location = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    assert oci.request("PATCH", location, repo, content=b"half").status_code == 202
    _gc(oci, delay=FUTURE)
    response = oci.put_manifest(repo, "v1", manifest)
    assert response.status_code == 201, response.text
    _gc(oci)
    for layer in manifest["layers"]:
        assert _stored(oci, repo, layer["digest"])
    rest = b"-and-rest"
    done = oci.request("PUT", f"{location}?digest={digest_of(b'half' + rest)}", repo, content=rest)
    assert done.status_code == 201, done.text
    loose = oci.push_blob(repo, b"never referenced " + uuid.uuid4().bytes)
    _gc(oci, delay=FUTURE)
    assert _stored(oci, repo, loose)
    _gc(oci)
    assert not _stored(oci, repo, loose)
    assert oci.request("HEAD", f"/v2/{repo}/blobs/{loose}", repo).status_code == 404


def test_shared_blob_counts_per_tenant(oci: OCIClient) -> None:
    """GC-03: deleting the image in p2 keeps p1's copy; deleting p1's collects it."""
    layer = uuid.uuid4().bytes * 50
    repos = [_new_repo(oci), _new_repo(oci)]
    pushed = [oci.push_image(repo, "v1", layers=[layer]) for repo in repos]
    oci.request("DELETE", f"/v2/{repos[1]}/manifests/{pushed[1].digest}", repos[1])
    _gc(oci)
    assert not _stored(oci, repos[1], digest_of(layer))
    blob = oci.request("GET", f"/v2/{repos[0]}/blobs/{digest_of(layer)}", repos[0])
    assert blob.content == layer
    oci.request("DELETE", f"/v2/{repos[0]}/manifests/{pushed[0].digest}", repos[0])
    _gc(oci)
    assert not _stored(oci, repos[0], digest_of(layer))
    assert (
        oci.request("HEAD", f"/v2/{repos[0]}/blobs/{digest_of(layer)}", repos[0]).status_code == 404
    )


def test_untagged_manifests_go_only_when_asked(oci: OCIClient) -> None:
    repo = _new_repo(oci)
    old = oci.push_image(repo, "v1")
    oci.push_image(repo, "v1")
    _gc(oci, untagged=False)
    assert oci.request("HEAD", f"/v2/{repo}/manifests/{old.digest}", repo).status_code == 200
    _gc(oci, untagged=True)
    assert oci.request("HEAD", f"/v2/{repo}/manifests/{old.digest}", repo).status_code == 404
    assert oci.request("HEAD", f"/v2/{repo}/manifests/v1", repo).status_code == 200


def test_dry_run_reports_and_changes_nothing(oci: OCIClient) -> None:
    repo = _new_repo(oci)
    pushed = oci.push_image(repo, "v1")
    oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
    due = datetime.now(UTC)
    report = _collector(oci).collect_blobs(due, 10_000, True)
    reasons = {item["digest"]: item["reason"] for item in report.items}
    assert reasons[pushed.blobs[0]] == "no manifest references it"
    assert _stored(oci, repo, pushed.blobs[0])
    again = _collector(oci).collect_blobs(due, 10_000, True)
    assert pushed.blobs[0] in {item["digest"] for item in again.items}


def test_orphan_objects_are_swept_after_grace(oci: OCIClient) -> None:
    repo = _new_repo(oci)
    oci.push_image(repo, "v1")
    registry = _registry(oci)
    repository = registry.repositories.find(RepositoryName.parse(repo))
    assert repository is not None
    data = b"orphan " + uuid.uuid4().bytes
    registry.store.put_blob(repository.storage_id, Digest.parse(digest_of(data)), data)
    collector = _collector(oci)
    now = datetime.now(UTC)
    collector.sweep_orphans(now, timedelta(hours=1), dry_run=False)
    assert _stored(oci, repo, digest_of(data))
    report = collector.sweep_orphans(now + timedelta(hours=2), timedelta(hours=1), dry_run=False)
    assert digest_of(data) in {item["digest"] for item in report.items}
    assert not _stored(oci, repo, digest_of(data))
    assert oci.request("GET", f"/v2/{repo}/manifests/v1", repo).status_code == 200


def test_gc_beside_concurrent_pushes_and_deletes(oci: OCIClient) -> None:
    """No manifest accepted with 201 and still stored ever loses a blob to GC."""
    repo = _new_repo(oci)
    shared = uuid.uuid4().bytes * 64
    accepted: list[dict[str, object]] = []
    stop = threading.Event()

    def pusher(n: int) -> None:
        for i in range(6):
            for _attempt in range(50):  # NOTE: with no review delay GC may win; clients retry
                manifest = _try_push(oci, repo, f"t{n}-{i}", [shared, uuid.uuid4().bytes])
                if manifest is not None:
                    accepted.append({"tag": f"t{n}-{i}", "manifest": manifest})
                    break
            if i % 2:
                oci.request("DELETE", f"/v2/{repo}/manifests/t{n}-{i}", repo)

    def collector() -> None:
        while not stop.is_set():
            _gc(oci, delay=timedelta(seconds=2))

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    pushers = [threading.Thread(target=pusher, args=(n,)) for n in range(3)]
    for thread in pushers:
        thread.start()
    for thread in pushers:
        thread.join(timeout=300)
    stop.set()
    gc_thread.join(timeout=300)
    _gc(oci)
    assert accepted
    for entry in accepted:
        head = oci.request("HEAD", f"/v2/{repo}/manifests/{entry['tag']}", repo)
        if head.status_code == 404:
            continue
        manifest = entry["manifest"]
        assert isinstance(manifest, dict)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            blob = oci.request("GET", f"/v2/{repo}/blobs/{descriptor['digest']}", repo)
            assert blob.status_code == 200, (entry["tag"], descriptor["digest"])


RETRIABLE = {"MANIFEST_BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID"}


def _try_push(oci: OCIClient, repo: str, tag: str, layers: list[bytes]) -> dict[str, Any] | None:
    """Push an image once; ``None`` when GC won a race (the error is a retriable one)."""
    config = json.dumps({"n": uuid.uuid4().hex}).encode()
    descriptors = []
    for data, media_type in [(config, OCI_CONFIG)] + [(layer, LAYER) for layer in layers]:
        digest = digest_of(data)
        url = f"/v2/{repo}/blobs/uploads/?digest={digest}"
        response = oci.request("POST", url, repo, content=data)
        if response.status_code != 201:
            assert response.json()["errors"][0]["code"] in RETRIABLE, response.text
            return None
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptors[0],
        "layers": descriptors[1:],
    }
    response = oci.put_manifest(repo, tag, manifest)
    if response.status_code != 201:
        assert response.json()["errors"][0]["code"] in RETRIABLE, response.text
        return None
    return manifest


def test_gc_run_api_queues_a_run(oci: OCIClient) -> None:
    auth = ("admin", oci.password)
    body = {"dry_run": True, "delete_untagged": False, "review_delay_seconds": 0}
    assert oci.client.post("/api/v1/system/gc", json=body).status_code == 401
    created = oci.client.post("/api/v1/system/gc", json=body, auth=auth)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    read = oci.client.get(f"/api/v1/system/gc/{run_id}", auth=auth).json()
    assert (read["state"], read["dry_run"], read["review_delay_seconds"]) == ("queued", True, 0)
    with _registry(oci).metadata.read() as session:
        requested = [e for e in session.outbox.pending(100_000) if e.kind == "gc.requested"]
    assert run_id in {json.loads(e.data or "{}")["run_id"] for e in requested}
    assert oci.client.get("/api/v1/system/gc/gc-nope", auth=auth).status_code == 404
    history = oci.client.get("/api/v1/system/gc", auth=auth).json()
    assert run_id in [run["id"] for run in history["items"]]


@pytest.mark.parametrize("delay", [timedelta(0)])
def test_gc_report_counts_bytes(oci: OCIClient, delay: timedelta) -> None:
    repo = _new_repo(oci)
    layer = uuid.uuid4().bytes * 10
    pushed = oci.push_image(repo, "v1", layers=[layer])
    oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
    report = _gc(oci, delay=delay)
    deleted = {
        item["digest"]: item.get("size") for item in report.items if item["action"] == "delete"
    }
    assert deleted[digest_of(layer)] == len(layer)
    assert report.bytes_freed >= len(layer)
