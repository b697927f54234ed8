"""Control-plane state that used to drift from what happened, against a real Temporal.

GC deletion events name their repository (so their workflows carry the search
attributes), run rows follow their workflows (terminated, cancelled), an object GC cannot
delete is quarantined instead of failing every run, schedules follow the settings, and a
GC run's history carries counters, not its report three times.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy
from litestar.testing import TestClient
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from adapters.clock import SystemClock
from api.app import create_app
from cli.outbox_task import build_outbox_dispatcher
from cli.schedules import (
    GC_SCHEDULE_ID,
    KEY_ROTATION_SCHEDULE_ID,
    QUOTA_SCHEDULE_ID,
    RETENTION_SCHEDULE_ID,
    ensure_gc_schedule,
    ensure_key_rotation_schedule,
    ensure_quota_schedule,
    ensure_retention_schedule,
)
from core.settings import Settings
from core.subscribers import builtin_subscribers
from tests.api.oci import OCIClient, unique_project
from tests.integration.test_control_plane import worker
from tests.services.control_backends import control_settings
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration
BOUND = 90.0
#: Most dispatch rounds a test's events need.
MAX_ROUNDS = 20
_CONTROL = {"outbox_poll_seconds": 0.2, "gc_every_seconds": 0, "policy_every_seconds": 0}


def _settings(
    root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> tuple[Settings, str]:
    settings = control_settings("sqlite-fs", root, temporal, request, _CONTROL, label="drift")
    password = settings.auth.admin_password
    assert password is not None
    return settings, password.get_secret_value()


def _admin(oci: OCIClient) -> tuple[str, str]:
    return ("admin", oci.password)


def _request_gc(oci: OCIClient, *, delete_untagged: bool = True) -> str:
    body = {"delete_untagged": delete_untagged, "review_delay_seconds": 0}
    response = oci.client.post("/api/v1/system/gc", json=body, auth=_admin(oci))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _read(oci: OCIClient, url: str) -> dict[str, Any]:
    response = oci.client.get(url, auth=_admin(oci))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _finished(oci: OCIClient, url: str) -> dict[str, Any]:
    async with asyncio.timeout(BOUND):
        while True:
            body = await anyio.to_thread.run_sync(_read, oci, url)
            if body["state"] not in {"queued", "running"}:
                return body
            await asyncio.sleep(0.3)


async def _dispatch(http: TestClient[Any], settings: Settings) -> None:
    """Start the workflows of every pending outbox event (bounded rounds)."""
    registry = http.app.state["registry"]
    dispatcher = build_outbox_dispatcher(
        settings, registry.metadata, builtin_subscribers(), SystemClock()
    )
    for _ in range(MAX_ROUNDS):
        if await dispatcher.dispatch_once() == 0:
            return


def _layer(payload: bytes) -> str:
    return str(json.loads(payload)["layers"][0]["digest"])


async def test_gc_deletion_events_carry_project_and_repository(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings, password = _settings(tmp_path, temporal_server, request)
    client = await Client.connect(temporal_server.address)
    project = unique_project()
    repo = f"{project}/app"
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
        untag = await anyio.to_thread.run_sync(
            lambda: oci.request("DELETE", f"/v2/{repo}/manifests/v1", repo)
        )
        assert untag.status_code == 202, untag.text
        query = f'MoorageRepository = "{repo}" AND MoorageProject = "{project}"'
        try:
            async with worker(settings):
                run = await anyio.to_thread.run_sync(_request_gc, oci)
                report = await _finished(oci, f"/api/v1/system/gc/{run}")
                assert report["state"] == "completed", report
                assert report["report"]["deleted"] >= 1
                # The worker's dispatcher batches the deletion event for the subscribers.
                async with asyncio.timeout(BOUND):
                    while not await _event_runs(client, query):
                        await asyncio.sleep(0.3)
            assert _deletion_repositories(http) == [repo]
        finally:
            async for found in client.list_workflows(f'MoorageProject = "{project}"'):
                handle = client.get_workflow_handle(found.id)
                if (await handle.describe()).close_time is None:
                    await handle.terminate("test done")


def _deletion_repositories(http: TestClient[Any]) -> list[str]:
    """The repository names the GC's ``manifest.deleted`` outbox events carry."""
    engine = sqlalchemy.create_engine(http.app.state["registry"].settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT repository FROM outbox_event WHERE kind = :kind"),
                {"kind": "manifest.deleted"},
            )
            return [str(row[0]) for row in rows]
    finally:
        engine.dispose()


async def _event_runs(client: Client, query: str) -> list[str]:
    """The ids of the finished event batch workflows the visibility query finds (a batch's
    id names its event kind when the batch holds one kind)."""
    ids = []
    async for found in client.list_workflows(query):
        handle = client.get_workflow_handle(found.id)
        if found.id.startswith("events-") and (await handle.describe()).close_time is not None:
            ids.append(found.id)
    return ids


async def test_run_rows_follow_terminated_and_cancelled_workflows(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    """No worker polls the runs' queue: the workflows wait until ended from outside."""
    settings, password = _settings(tmp_path, temporal_server, request)
    client = await Client.connect(temporal_server.address)
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        terminated = await anyio.to_thread.run_sync(_request_gc, oci)
        cancelled = await anyio.to_thread.run_sync(_request_gc, oci)
        project = unique_project()
        await anyio.to_thread.run_sync(oci.push_image, f"{project}/app", "v1")
        rules = {"rules": [{"template": "always", "tag": {"pattern": "*"}}]}
        base = f"/api/v1/projects/{project}/retention"
        assert http.put(base, json=rules, auth=_admin(oci)).is_success
        started = http.post(f"{base}/runs", json={"dry_run": True}, auth=_admin(oci))
        retention = str(started.json()["id"])
        await _dispatch(http, settings)
        for run_id in (terminated, cancelled, retention):
            assert (await client.get_workflow_handle(run_id).describe()).close_time is None

        await client.get_workflow_handle(terminated).terminate("an operator's hand")
        read = await anyio.to_thread.run_sync(_read, oci, f"/api/v1/system/gc/{terminated}")
        assert read["state"] == "failed", read
        assert "terminated" in read["report"]["reason"]
        listed = await anyio.to_thread.run_sync(_read_list, oci, "/api/v1/system/gc")
        assert listed[terminated] == "failed"

        answer = http.post(f"/api/v1/system/gc/{cancelled}/cancel", auth=_admin(oci))
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "cancelled"
        assert "admin" in answer.json()["report"]["reason"]
        again = http.post(f"/api/v1/system/gc/{cancelled}/cancel", auth=_admin(oci))
        assert again.status_code == 409, again.text
        gone = http.post(f"{base}/runs/{retention}/cancel", auth=_admin(oci))
        assert gone.status_code == 200, gone.text
        assert gone.json()["state"] == "cancelled"
        assert (await anyio.to_thread.run_sync(_read, oci, f"{base}/runs/{retention}"))[
            "state"
        ] == "cancelled"
    for run_id in (cancelled, retention):
        handle = client.get_workflow_handle(run_id)
        history = [event.event_type async for event in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in history
        await handle.terminate("test done")


def _read_list(oci: OCIClient, url: str) -> dict[str, str]:
    response = oci.client.get(url, auth=_admin(oci))
    assert response.status_code == 200, response.text
    return {run["id"]: run["state"] for run in response.json()["items"]}


async def test_an_undeletable_object_is_quarantined_then_deleted_after_repair(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings, password = _settings(tmp_path, temporal_server, request)
    repo = f"{unique_project()}/app"
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        pushed = await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
        layer = _layer(pushed.payload)
        (path,) = settings.data_dir.rglob(layer.split(":")[1])
        content = path.read_bytes()
        deleted = await anyio.to_thread.run_sync(
            lambda: oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
        )
        assert deleted.status_code == 202, deleted.text
        path.unlink()
        path.mkdir()  # NOTE: a directory where the object's file was: it cannot be unlinked
        (path / "stray").write_bytes(b"x")
        async with worker(settings):
            first = await _gc(oci)
            second = await _gc(oci)
            (path / "stray").unlink()
            path.rmdir()
            path.write_bytes(content)  # NOTE: the repair
            third = await _gc(oci)
    for run in (first, second):
        assert run["state"] == "completed", run
        assert run["report"]["quarantined"] == 1
        (item,) = [i for i in run["report"]["items"] if i["action"] == "quarantine"]
        assert item["digest"] == layer
        assert "IsADirectoryError" in item["reason"]
    assert third["state"] == "completed", third
    assert third["report"]["quarantined"] == 0
    assert third["report"]["deleted"] == 1
    assert third["report"]["bytes_freed"] == len(content)
    assert [(i["digest"], i["action"]) for i in third["report"]["items"]] == [(layer, "delete")]
    assert not path.exists()


async def _gc(oci: OCIClient) -> dict[str, Any]:
    run = await anyio.to_thread.run_sync(_request_gc, oci)
    return await _finished(oci, f"/api/v1/system/gc/{run}")


async def test_a_gc_history_carries_counters_and_the_row_the_report(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings, password = _settings(tmp_path, temporal_server, request)
    client = await Client.connect(temporal_server.address)
    repo = f"{unique_project()}/app"
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        pushed = await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
        assert oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo).is_success
        async with worker(settings):
            run = await _gc(oci)
    assert run["state"] == "completed", run
    layer = _layer(pushed.payload)
    assert (layer, "delete") in [(i["digest"], i["action"]) for i in run["report"]["items"]]
    history = await client.get_workflow_handle(run["id"]).fetch_history()
    assert layer not in history.to_json()  # NOTE: the items are in the row only
    payloads = [
        event.activity_task_completed_event_attributes.result
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    encodings = {p.metadata["encoding"] for result in payloads for p in result.payloads}
    assert encodings == {b"json/plain"}  # NOTE: no binary null
    scheduled = [
        json.loads(p.data)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        for p in event.activity_task_scheduled_event_attributes.input.payloads
    ]
    recorded = [s for s in scheduled if "state" in s]
    assert [s["state"] for s in recorded] == ["running", "completed"]
    assert all(isinstance(s.get("report"), dict | None) for s in recorded)
    assert all(s.get("report_json") is None for s in recorded)


async def _described(client: Client, schedule_id: str) -> tuple[timedelta, timedelta, bool]:
    described = await client.get_schedule_handle(schedule_id).describe()
    (interval,) = described.schedule.spec.intervals
    # No offset at all reads as offset 0 (the daily jobs must not start at 00:00).
    return interval.every, interval.offset or timedelta(0), described.schedule.state.paused


async def test_schedules_follow_the_settings_and_daily_jobs_are_spread(tmp_path: Path) -> None:
    """A private server: the schedules keep the ids a worker gives them."""
    temporal = start_temporal(tmp_path / "temporal")
    try:
        client = await Client.connect(temporal.address)
        await _follow_settings(client)
    finally:
        temporal.stop()


async def _follow_settings(client: Client) -> None:
    queue, day = f"q-{uuid.uuid4().hex}", 24 * 3600
    ids = {
        "gc": GC_SCHEDULE_ID,
        "retention": RETENTION_SCHEDULE_ID,
        "quota": QUOTA_SCHEDULE_ID,
        "keys": KEY_ROTATION_SCHEDULE_ID,
    }

    async def configure(gc: int, policy: int, key_days: int) -> None:
        await ensure_gc_schedule(client, task_queue=queue, every_seconds=gc, delete_untagged=False)
        await ensure_retention_schedule(client, task_queue=queue, every_seconds=policy)
        await ensure_quota_schedule(client, task_queue=queue, every_seconds=policy)
        await ensure_key_rotation_schedule(
            client, task_queue=queue, every_days=key_days, grace_seconds=60
        )

    await configure(day, day, 1)
    daily = {name: await _described(client, sid) for name, sid in ids.items()}
    assert {every for every, _, _ in daily.values()} == {timedelta(days=1)}
    offsets = [offset for _, offset, _ in daily.values()]
    assert len(set(offsets)) == 4, offsets
    assert timedelta(0) not in offsets
    assert daily["retention"][1] < daily["gc"][1] < daily["quota"][1]

    await configure(3600, 7200, 2)
    assert (await _described(client, ids["gc"]))[::2] == (timedelta(hours=1), False)
    assert (await _described(client, ids["retention"]))[::2] == (timedelta(hours=2), False)
    assert (await _described(client, ids["keys"]))[::2] == (timedelta(days=2), False)

    await configure(0, 0, 0)
    for sid in ids.values():
        assert (await _described(client, sid))[2] is True, sid
    note = (await client.get_schedule_handle(ids["gc"]).describe()).schedule.state.note
    assert "gc_every_seconds" in (note or "")

    await configure(1800, day, 1)
    assert (await _described(client, ids["gc"]))[::2] == (timedelta(minutes=30), False)
    assert (await _described(client, ids["quota"]))[2] is False
