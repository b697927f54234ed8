"""Uploads beside GC at review delay 0: a complete upload never fails because of GC.

GC steps run in-process, in threads beside the pushes, on each backend.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.clock import SystemClock
from api.context import Registry
from core.digests import Digest
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from tests.api.oci import LAYER, OCI_CONFIG, OCI_MANIFEST, OCIClient, digest_of, unique_project

#: The soak's bounds per backend (two backends: 60 s in all), in time and in images.
SOAK_SECONDS = 30.0
SOAK_IMAGES_PER_PUSHER = 200
PUSHERS = 3
#: Attempts at one image whose manifest push lost its blobs to GC (delay 0) before it.
IMAGE_ATTEMPTS = 20
#: The collector's rhythm: passes back to back for a burst, then a pause (bounded).
BURST_SECONDS, PAUSE_MAX_SECONDS = 1.0, 5.0


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _gc_once(oci: OCIClient) -> int:
    """One pass of every GC step at review delay 0; how many reviews it took."""
    registry = _registry(oci)
    collector = GarbageCollector(
        registry.metadata, registry.store, ChangeRecorder(0, 0.85, SystemClock())
    )
    due = datetime.now(UTC)
    reviewed = collector.collect_manifests(due, 100, False).reviewed
    reviewed += collector.collect_blobs(due, 100, False).reviewed
    while collector.finish_tombstones(100):
        pass
    return reviewed


def _new_repo(oci: OCIClient) -> str:
    project = unique_project()
    auth = ("admin", oci.password)
    response = oci.client.post("/api/v1/projects", json={"name": project}, auth=auth)
    assert response.status_code == 201, response.text
    return f"{project}/app"


@pytest.fixture
def gc_during_finish(oci: OCIClient) -> Iterator[list[int]]:
    """While an upload's object is being put in place, run GC at delay 0 in a thread.

    The store's ``finish_upload`` (the real one) is wrapped: once the object is in
    place, a GC pass starts in another thread and is given up to 3 s to complete
    before the upload goes on (a GC blocked by the upload's lock cannot complete
    earlier). Yields the reviews each pass took.
    """
    store = _registry(oci).store
    real = store.finish_upload
    passes: list[int] = []
    threads: list[threading.Thread] = []

    def finish_upload(tenant: str, upload_id: str, digest: Digest, size: int | None = None) -> None:
        real(tenant, upload_id, digest, size)
        thread = threading.Thread(target=lambda: passes.append(_gc_once(oci)))
        threads.append(thread)
        thread.start()
        thread.join(timeout=3)

    store.finish_upload = finish_upload  # type: ignore[method-assign]
    try:
        yield passes
    finally:
        del store.finish_upload
        for thread in threads:
            thread.join(timeout=60)


def test_a_complete_upload_wins_against_gc_deciding_meanwhile(
    oci: OCIClient, gc_during_finish: list[int]
) -> None:
    repo = _new_repo(oci)
    monolithic = b"monolithic " + uuid.uuid4().bytes
    assert oci.push_blob(repo, monolithic) == digest_of(monolithic)
    location = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo).headers["location"]
    assert oci.request("PATCH", location, repo, content=b"chunk ").status_code == 202
    rest = uuid.uuid4().bytes
    done = oci.request(
        "PUT", f"{location}?digest={digest_of(b'chunk ' + rest)}", repo, content=rest
    )
    assert done.status_code == 201, done.text


def _upload(oci: OCIClient, repo: str, data: bytes, chunked: bool) -> tuple[int, str]:
    """Upload ``data`` (one POST, or POST + PATCH + PUT); the status and error text."""
    digest = digest_of(data)
    if not chunked:
        response = oci.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", repo, content=data
        )
        return response.status_code, response.text
    started = oci.request("POST", f"/v2/{repo}/blobs/uploads/", repo)
    if started.status_code != 202:
        return started.status_code, started.text
    location = started.headers["location"]
    half = len(data) // 2
    patched = oci.request("PATCH", location, repo, content=data[:half])
    if patched.status_code != 202:
        return patched.status_code, patched.text
    response = oci.request("PUT", f"{location}?digest={digest}", repo, content=data[half:])
    return response.status_code, response.text


class _Soak:
    def __init__(self, oci: OCIClient, repo: str, deadline: float) -> None:
        self.oci, self.repo, self.deadline = oci, repo, deadline
        self.shared = uuid.uuid4().bytes * 64
        self.refused: list[str] = []
        self.uploads = 0
        self.kept: dict[str, bytes] = {}
        self.lost = 0
        #: Set whenever an image's manifest is accepted.
        self.landed = threading.Event()
        self.lock = threading.Lock()

    def push(self, tag: str, chunked: bool) -> bytes | None:
        """Push one image; its manifest, or ``None`` when GC took a blob before it."""
        config = json.dumps({"n": uuid.uuid4().hex}).encode()
        blobs = [(config, OCI_CONFIG), (self.shared, LAYER), (uuid.uuid4().bytes * 8, LAYER)]
        descriptors = []
        for data, media_type in blobs:
            status, text = _upload(self.oci, self.repo, data, chunked)
            with self.lock:
                self.uploads += 1
                if status != 201:
                    self.refused.append(f"{status} {text}")
            if status != 201:
                return None
            descriptors.append(
                {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
            )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptors[0],
            "layers": descriptors[1:],
        }
        payload = json.dumps(manifest).encode()
        response = self.oci.put_manifest(self.repo, tag, payload)
        if response.status_code == 201:
            self.landed.set()
            return payload
        # NOTE: at review delay 0 GC may take a blob no manifest references yet.
        assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", response.text
        with self.lock:
            self.lost += 1
        return None

    def pusher(self, n: int) -> None:
        for i in range(SOAK_IMAGES_PER_PUSHER):
            if time.monotonic() > self.deadline:
                return
            tag = f"t{n}-{i}"
            payload = None
            for _attempt in range(IMAGE_ATTEMPTS):
                payload = self.push(tag, chunked=bool(i % 2))
                if payload is not None or time.monotonic() > self.deadline:
                    break
            if payload is None:
                continue
            if i % 3 == 0:
                deleted = self.oci.request("DELETE", f"/v2/{self.repo}/manifests/{tag}", self.repo)
                assert deleted.status_code == 202, deleted.text
            else:
                with self.lock:
                    self.kept[tag] = payload


def test_soak_pushes_beside_back_to_back_gc_refuse_no_upload(oci: OCIClient) -> None:
    """Pushes (monolithic and chunked, one layer shared by all) beside GC passes run
    (nearly) back to back at review delay 0, bounded in time and count: no upload is
    refused and every kept tag pulls with all its blobs."""
    repo = _new_repo(oci)
    soak = _Soak(oci, repo, time.monotonic() + SOAK_SECONDS)
    stop, passes = threading.Event(), list[int]()

    def collector() -> None:
        # NOTE: bursts of passes back to back (uploads race GC there), each followed by
        # a pause until an image got its manifest in before GC took its blobs (at delay
        # 0 a blob no manifest references yet is garbage), bounded in time.
        while not stop.is_set():
            burst_end = time.monotonic() + BURST_SECONDS
            while time.monotonic() < burst_end and not stop.is_set():
                passes.append(_gc_once(oci))
            soak.landed.clear()
            soak.landed.wait(PAUSE_MAX_SECONDS)

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    pushers = [threading.Thread(target=soak.pusher, args=(n,)) for n in range(PUSHERS)]
    try:
        for thread in pushers:
            thread.start()
        for thread in pushers:
            thread.join(timeout=SOAK_SECONDS + 120)
    finally:
        stop.set()
        gc_thread.join(timeout=120)
    assert soak.refused == []
    assert soak.uploads > 0
    assert soak.kept, f"no image kept ({soak.lost} lost their blobs to GC first)"
    assert sum(passes) > 0, "GC never reviewed anything"
    for tag, payload in soak.kept.items():
        manifest: dict[str, Any] = json.loads(payload)
        pulled = oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo)
        assert pulled.status_code == 200, tag
        assert pulled.content == payload
        for descriptor in [manifest["config"], *manifest["layers"]]:
            blob = oci.request("GET", f"/v2/{repo}/blobs/{descriptor['digest']}", repo)
            assert blob.status_code == 200, (tag, descriptor["digest"])
