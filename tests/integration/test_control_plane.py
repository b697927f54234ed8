"""The control plane against a private Temporal dev server.

Outbox delivery across a Temporal outage, then GC and retention runs requested through
the management API and carried out by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from litestar.testing import TestClient
from temporalio.client import Client

from activities.contracts import ReconcileInput
from api.app import create_app
from cli.composition import compose
from cli.wiring import build_activities
from cli.worker import run_worker
from core.names import RepositoryName
from core.settings import Settings
from core.subscribers import builtin_subscribers
from tests.api.oci import OCIClient, Pushed, unique_project
from tests.conftest import BACKENDS
from tests.services.control_backends import control_settings
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration
BOUND = 90.0


@contextlib.asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[None]:
    stop, polling = asyncio.Event(), asyncio.Event()
    root = compose(settings)
    task = asyncio.create_task(
        run_worker(
            settings,
            build_activities(root),
            stop,
            outbox=root.outbox_dispatcher(builtin_subscribers()),
            polling=polling,
        )
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
        root.close()


_CONTROL = {"outbox_poll_seconds": 0.2, "gc_every_seconds": 0, "policy_every_seconds": 0}


def _settings(
    root: Path, temporal: TemporalServer, backend: str, request: pytest.FixtureRequest
) -> tuple[Settings, str]:
    """Settings on ``backend`` and the admin password they carry."""
    settings = control_settings(backend, root, temporal, request, _CONTROL, label="cp")
    password = settings.auth.admin_password
    assert password is not None
    return settings, password.get_secret_value()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_events_survive_a_temporal_outage_and_gc_runs_on_request(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    temporal = start_temporal(tmp_path / "temporal")
    settings, password = _settings(tmp_path, temporal, backend, request)
    try:
        with TestClient(create_app(settings)) as http:
            oci = OCIClient(http, password)
            repo = f"{unique_project()}/app"
            temporal.stop()
            pushed = await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
            await anyio.to_thread.run_sync(_usage_is_exact, oci, repo, [pushed])
            temporal = start_temporal(tmp_path / "temporal", port=temporal.port)
            async with worker(settings):
                client = await Client.connect(temporal.address)
                async with asyncio.timeout(BOUND):
                    workflow_id = await _event_workflow_id(oci, pushed.digest)
                    handle = client.get_workflow_handle(workflow_id)
                    handled = await _result(handle)  # events the log subscriber handled
                assert isinstance(handled, int)
                assert handled >= 1
                await anyio.to_thread.run_sync(
                    lambda: oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
                )
                run = await anyio.to_thread.run_sync(_request_gc, oci)
                async with asyncio.timeout(BOUND):
                    report = await _finished(oci, f"/api/v1/system/gc/{run}")
                assert await anyio.to_thread.run_sync(_usage_is_exact, oci, repo, [pushed]) == 0
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


async def _event_workflow_id(oci: OCIClient, digest: str) -> str:
    """The run of the log subscriber's batch holding the push event of ``digest``, once the
    worker's dispatcher formed it (the caller bounds the wait)."""
    from sqlalchemy import select

    from storage.db.repos.outbox import BATCH, OUTBOX

    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    event = select(OUTBOX.c.id).where(OUTBOX.c.kind == "manifest.pushed", OUTBOX.c.digest == digest)
    query = select(BATCH.c.workflow_id).where(
        BATCH.c.subscriber == "log",
        BATCH.c.first_event_id <= event.scalar_subquery(),
        BATCH.c.last_event_id >= event.scalar_subquery(),
    )
    while True:
        with registry.metadata.read() as session:
            found = session._c.execute(query).scalar()
        if found is not None:
            return str(found)
        await asyncio.sleep(0.2)


def _request_gc(oci: OCIClient) -> str:
    body = {"dry_run": False, "delete_untagged": True, "review_delay_seconds": 0}
    response = oci.client.post("/api/v1/system/gc", json=body, auth=("admin", oci.password))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _request_retention(oci: OCIClient, repo: str, dry_run: bool = False) -> str:
    project, auth = repo.split("/", maxsplit=1)[0], ("admin", oci.password)
    rules = {"rules": [{"template": "always", "tag": {"pattern": "keep-*"}}]}
    assert oci.client.put(f"/api/v1/projects/{project}/retention", json=rules, auth=auth).is_success
    url = f"/api/v1/projects/{project}/retention/runs"
    response = oci.client.post(url, json={"dry_run": dry_run}, auth=auth)
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


def _usage_is_exact(oci: OCIClient, repo: str, images: list[Pushed]) -> int:
    """DI-05: the project's reported usage is the bytes of the distinct blobs and of the
    manifests its repository serves (among ``images``); returns that usage."""
    blobs: dict[str, int] = {}
    manifests = 0
    for image in images:
        if oci.request("HEAD", f"/v2/{repo}/manifests/{image.digest}", repo).status_code == 200:
            manifests += len(image.payload)
        manifest = json.loads(image.payload)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            head = oci.request("HEAD", f"/v2/{repo}/blobs/{descriptor['digest']}", repo)
            if head.status_code == 200:
                blobs[descriptor["digest"]] = int(descriptor["size"])
    project, auth = repo.split("/", maxsplit=1)[0], ("admin", oci.password)
    quota = oci.client.get(f"/api/v1/projects/{project}/quota", auth=auth).json()
    assert quota["used_bytes"] == manifests + sum(blobs.values())
    return int(quota["used_bytes"])


def _own_bytes(image: Pushed) -> int:
    """Bytes of an image's manifest, config and layers."""
    manifest = json.loads(image.payload)
    sizes = [int(d["size"]) for d in [manifest["config"], *manifest["layers"]]]
    return len(image.payload) + sum(sizes)


def _decisions(run: dict[str, Any]) -> dict[str, str]:
    return {item["digest"]: item["action"] for item in run["report"]["items"]}


async def _retention(oci: OCIClient, repo: str, *, dry_run: bool) -> dict[str, Any]:
    url = await anyio.to_thread.run_sync(partial(_request_retention, oci, repo, dry_run=dry_run))
    async with asyncio.timeout(BOUND):
        run = await _finished(oci, url)
    assert run["state"] == "completed", run
    return run


async def _reconcile(settings: Settings, project: str) -> dict[str, Any]:
    """Run a quota reconciliation on the worker; the project's entry of its result."""
    client = await Client.connect(settings.temporal.address)
    async with asyncio.timeout(BOUND):
        entries: list[dict[str, Any]] = await client.execute_workflow(
            "QuotaReconcileWorkflow",
            ReconcileInput(),
            id=f"reconcile-{uuid.uuid4().hex}",
            task_queue=settings.temporal.task_queue,
            result_type=list[dict[str, Any]],
        )
    (entry,) = [entry for entry in entries if entry["project"] == project]
    return entry


def _stored(oci: OCIClient, repo: str) -> set[str]:
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    repository = registry.repositories.find(RepositoryName.parse(repo))
    return set(map(str, registry.store.list_blobs(repository.storage_id)))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_retention_gc_and_reconcile_by_the_worker_keep_usage_exact(
    backend: str, tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings, password = _settings(tmp_path, temporal_server, backend, request)
    with TestClient(create_app(settings)) as http:
        oci, repo = OCIClient(http, password), f"{unique_project()}/app"
        images = [
            await anyio.to_thread.run_sync(oci.push_image, repo, tag)
            for tag in ("keep-1", "old-1", "old-2")
        ]
        exact = partial(anyio.to_thread.run_sync, _usage_is_exact, oci, repo, images)
        before = await exact()
        expected = {image.digest: "delete" for image in images[1:]}
        expected[images[0].digest] = "retain"
        async with worker(settings):
            assert _decisions(await _retention(oci, repo, dry_run=True)) == expected
            assert await exact() == before  # a dry run changes nothing
            assert _decisions(await _retention(oci, repo, dry_run=False)) == expected
            assert await exact() == before - sum(len(image.payload) for image in images[1:])
            run = await anyio.to_thread.run_sync(_request_gc, oci)
            async with asyncio.timeout(BOUND):
                assert (await _finished(oci, f"/api/v1/system/gc/{run}"))["state"] == "completed"
            assert await exact() == _own_bytes(images[0])
            quota = {"bytes": 10 * _own_bytes(images[0])}
            project, auth = repo.split("/", maxsplit=1)[0], ("admin", password)
            assert http.put(f"/api/v1/projects/{project}/quota", json=quota, auth=auth).is_success
            entry = await _reconcile(settings, project)
        kept = json.loads(images[0].payload)
        blobs = {d["digest"] for d in [kept["config"], *kept["layers"]]}
        assert await anyio.to_thread.run_sync(_stored, oci, repo) == blobs
        for image in images[1:]:
            head = oci.request("HEAD", f"/v2/{repo}/manifests/{image.digest}", repo)
            assert head.status_code == 404
        assert (entry["used_bytes"], entry["drift"], entry["warning"]) == (await exact(), [], False)
