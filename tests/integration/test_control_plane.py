"""The control plane against a private Temporal dev server.

Outbox delivery across a Temporal outage, then GC and retention runs requested through
the management API and carried out by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from litestar.testing import TestClient
from temporalio.client import Client

from api.app import create_app
from cli.outbox import event_workflow_id
from cli.wiring import build_activities
from cli.worker import run_worker
from core.control_records import OutboxRecord
from core.settings import Settings
from storage.db.migrate import upgrade
from tests.api.oci import OCIClient, unique_project
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration
BOUND = 90.0


@contextlib.asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[None]:
    stop, polling = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, build_activities(settings), stop, polling=polling)
    )
    async with asyncio.timeout(BOUND):
        await asyncio.wait(
            {task, asyncio.create_task(polling.wait())}, return_when="FIRST_COMPLETED"
        )
    assert polling.is_set(), task.exception() if task.done() else "worker not polling"
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await task


def _settings(root: Path, temporal: TemporalServer, password: str) -> Settings:
    settings = Settings(
        data_dir=root / "data",
        auth={"admin_password": password, "create_project_on_push": True},
        temporal={"address": temporal.address, "task_queue": f"q-{uuid.uuid4().hex}"},
        control={"outbox_poll_seconds": 0.2, "gc_every_seconds": 0},
    )
    upgrade(settings)
    return settings


async def test_events_survive_a_temporal_outage_and_gc_runs_on_request(tmp_path: Path) -> None:
    temporal = start_temporal(tmp_path / "temporal")
    password = secrets.token_urlsafe(12)
    settings = _settings(tmp_path, temporal, password)
    try:
        with TestClient(create_app(settings)) as http:
            oci = OCIClient(http, password)
            repo = f"{unique_project()}/app"
            temporal.stop()
            pushed = await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
            temporal = start_temporal(tmp_path / "temporal", port=temporal.port)
            async with worker(settings):
                client = await Client.connect(temporal.address)
                workflow_id = await anyio.to_thread.run_sync(_event_workflow_id, oci, pushed.digest)
                handle = client.get_workflow_handle(workflow_id)
                async with asyncio.timeout(BOUND):
                    assert await _result(handle) == "manifest.pushed"
                await anyio.to_thread.run_sync(
                    lambda: oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
                )
                run = await anyio.to_thread.run_sync(_request_gc, oci)
                async with asyncio.timeout(BOUND):
                    report = await _finished(oci, f"/api/v1/system/gc/{run}")
                kept = await anyio.to_thread.run_sync(oci.push_image, repo, "v2")
                retention = await anyio.to_thread.run_sync(_request_retention, oci, repo)
                async with asyncio.timeout(BOUND):
                    retained = await _finished(oci, retention)
            assert retained["state"] == "completed"
            assert [(i["digest"], i["action"]) for i in retained["report"]["items"]] == [
                (kept.digest, "delete")
            ]
            assert oci.request("HEAD", f"/v2/{repo}/manifests/v2", repo).status_code == 404
            assert report["state"] == "completed"
            assert report["report"]["deleted"] >= 2
            head = oci.request("HEAD", f"/v2/{repo}/blobs/{pushed.blobs[0]}", repo)
            assert head.status_code == 404
    finally:
        temporal.stop()


async def _result(handle: object) -> object:
    while True:
        with contextlib.suppress(Exception):
            return await handle.result()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)


def _event_workflow_id(oci: OCIClient, digest: str) -> str:
    """The workflow id of the push event of ``digest`` (dispatched or not)."""
    from sqlalchemy import select

    from storage.db.outbox_queries import OUTBOX

    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    columns = [OUTBOX.c[name] for name in OutboxRecord.__slots__]
    query = select(*columns).where(OUTBOX.c.kind == "manifest.pushed", OUTBOX.c.digest == digest)
    with registry.metadata.read() as session:
        row = session._c.execute(query).one()
    return event_workflow_id(OutboxRecord(*row))


def _request_gc(oci: OCIClient) -> str:
    body = {"dry_run": False, "delete_untagged": True, "review_delay_seconds": 0}
    response = oci.client.post("/api/v1/system/gc", json=body, auth=("admin", oci.password))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _request_retention(oci: OCIClient, repo: str) -> str:
    project, auth = repo.split("/", maxsplit=1)[0], ("admin", oci.password)
    rules = {"rules": [{"template": "always", "tag": {"pattern": "keep-*"}}]}
    assert oci.client.put(f"/api/v1/projects/{project}/retention", json=rules, auth=auth).is_success
    url = f"/api/v1/projects/{project}/retention/runs"
    response = oci.client.post(url, json={"dry_run": False}, auth=auth)
    assert response.status_code == 202, response.text
    return f"{url}/{response.json()['id']}"


async def _finished(oci: OCIClient, url: str) -> dict[str, Any]:
    while True:
        response = await anyio.to_thread.run_sync(
            lambda: oci.client.get(url, auth=("admin", oci.password))
        )
        body: dict[str, Any] = response.json()
        if body["state"] in {"completed", "failed"}:
            return body
        await asyncio.sleep(0.3)
