"""A backup survives ``kill -9`` of its worker: a new worker resumes the copy, the backup
completes and verifies, and GC stayed held while the backup was unfinished."""

from __future__ import annotations

import os
import secrets
import time
from typing import TYPE_CHECKING, Any

import pytest

from cli.composition import compose
from tests.api.oci import OCIClient, unique_project
from tests.integration.backup_rig import fs_location, installation, start_api, start_worker

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
BOUND = 180.0
IMAGES = 120
LAYER_BYTES = 256 * 1024


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kill_9_mid_backup_resumes_and_completes(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    password = secrets.token_urlsafe(12)
    location = tmp_path / "backups"
    settings = installation(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        password=password,
        backup=fs_location(location, encrypted=False),
        label="bkc",
    )
    api = start_api(settings, tmp_path / "api")
    root = compose(settings)
    try:
        import httpx

        with httpx.Client(base_url=api.url, timeout=60) as client:
            oci = OCIClient(client, password)
            repo = f"{unique_project()}/app"
            for i in range(IMAGES):
                oci.push_image(repo, f"t{i}", layers=[os.urandom(LAYER_BYTES)])
            auth = ("admin", password)
            started = client.post("/api/v1/system/backups", json={}, auth=auth).json()
            operation = f"/api/v1/system/backups/operations/{started['id']}"
            copied = lambda: sum(  # noqa: E731 - written blobs, not a killed write's temporary file
                1 for p in (location / "blobs").rglob("sha256/*") if not p.name.startswith(".tmp-")
            )
            first = start_worker(settings, tmp_path / "worker-1.log")
            try:
                _wait(lambda: copied() >= 20, "the backup to copy some blobs")
                first.popen.kill()  # SIGKILL, this PID only
                first.popen.wait(timeout=30)
            finally:
                first.stop()
            assert copied() < 2 * IMAGES, "the copy finished before the kill"
            assert client.get(operation, auth=auth).json()["state"] == "running"
            assert root.backup_holds.held(), "GC is not held while the backup is unfinished"
            second = start_worker(settings, tmp_path / "worker-2.log")
            try:
                _wait(
                    lambda: client.get(operation, auth=auth).json()["state"] != "running",
                    "the resumed backup to end",
                )
                done = client.get(operation, auth=auth).json()
                assert done["state"] == "completed", done
                assert done["result"]["blobs"] == 2 * IMAGES
                assert copied() == 2 * IMAGES
                assert not root.backup_holds.held()
                verify = client.post(
                    f"/api/v1/system/backups/{started['backup_id']}/verify", json={}, auth=auth
                ).json()
                check = f"/api/v1/system/backups/operations/{verify['id']}"
                _wait(
                    lambda: client.get(check, auth=auth).json()["state"] != "running",
                    "the verification",
                )
                result = client.get(check, auth=auth).json()["result"]
                assert result["ok"], result
                assert result["blobs_checked"] == 2 * IMAGES
            finally:
                second.stop()
    finally:
        root.close()
        api.stop()
