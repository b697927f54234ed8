"""GC survives ``kill -9`` of the worker: a restarted worker finishes the run, and the
final state is what an undisturbed run leaves (only the live image's blobs remain)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.digests import Digest
from core.names import RepositoryName
from core.settings import Settings
from tests.api.oci import OCIClient, unique_project
from tests.services.control_backends import control_settings, worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
BOUND = 120.0
GARBAGE_IMAGES = 150


def _env(settings: Settings) -> dict[str, str]:
    control = {"GC_BATCH_SIZE": "1", "GC_EVERY_SECONDS": "0", "OUTBOX_POLL_SECONDS": "0.2"}
    return worker_env(settings, control)


def _settings(
    backend: str, root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> Settings:
    control = {"gc_batch_size": 1, "gc_every_seconds": 0}
    return control_settings(backend, root, temporal, request, control, label="crash")


def _worker(settings: Settings, log: Path) -> ManagedProcess:
    return spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=log,
        env=_env(settings),
        cwd=REPO_ROOT,
    )


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite-fs", "pg-s3"])
def test_kill_9_mid_gc_ends_like_an_undisturbed_run(
    backend: str, tmp_path: Path, temporal_server: TemporalServer, request: Any
) -> None:
    settings = _settings(backend, tmp_path, temporal_server, request)
    assert settings.auth.admin_password is not None
    password = settings.auth.admin_password.get_secret_value()
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        repo = f"{unique_project()}/app"
        live = oci.push_image(repo, "live")
        for i in range(GARBAGE_IMAGES):
            pushed = oci.push_image(repo, f"g{i}")
            oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
        registry = http.app.state["registry"]  # type: ignore[attr-defined]
        repository = registry.repositories.find(RepositoryName.parse(repo))
        stored = lambda: set(map(str, registry.store.list_blobs(repository.storage_id)))  # noqa: E731
        pushed_objects = stored()
        before = len(pushed_objects)
        body = {"dry_run": False, "delete_untagged": True, "review_delay_seconds": 0}
        run_id = oci.client.post("/api/v1/system/gc", json=body, auth=("admin", password)).json()[
            "id"
        ]
        state = lambda: oci.client.get(  # noqa: E731
            f"/api/v1/system/gc/{run_id}", auth=("admin", password)
        ).json()["state"]
        first = _worker(settings, tmp_path / "worker-1.log")
        try:
            _wait(lambda: len(stored()) <= before - 20, "GC to delete some blobs")
            first.popen.kill()  # SIGKILL, this PID only
            first.popen.wait(timeout=30)
        finally:
            first.stop()
        assert state() == "running"
        assert len(stored()) > 3, "the run finished before the kill; nothing was interrupted"
        second = _worker(settings, tmp_path / "worker-2.log")
        try:
            _wait(lambda: state() == "completed", "the resumed run to complete")
        finally:
            second.stop()
        assert stored() == {*live.blobs, *_layers(live.payload)}
        with registry.metadata.read() as session:
            assert session.collector.blob_tombstones(100, lock=False) == []
            rows = session.collector.blob_sizes(repository.project_id, sorted(pushed_objects))
            assert set(rows) == stored()
        for digest in stored():
            blob = oci.request("GET", f"/v2/{repo}/blobs/{digest}", repo)
            assert blob.status_code == 200
            assert Digest.of(blob.content) == Digest.parse(digest)
        assert oci.request("GET", f"/v2/{repo}/manifests/live", repo).content == live.payload


def _layers(payload: bytes) -> set[str]:
    import json

    return {layer["digest"] for layer in json.loads(payload)["layers"]}
