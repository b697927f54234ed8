"""Scheduled signing-key rotation against the Temporal dev server and the registry app."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow

from activities.contracts import KeyRotationInput, KeyRotationResult
from activities.keys import KeyActivities
from api.app import create_app
from cli.composition import compose
from cli.schedules import ensure_key_rotation_schedule
from cli.startup import prepare_installation
from cli.worker import ACTIVITY_THREADS, build_worker
from core.settings import AuthSettings, Settings
from workflows.keys import KeyRotationWorkflow

if TYPE_CHECKING:
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

BOUND = 60.0
Http = TestClient[Litestar]


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Http]:
    password = secrets.token_urlsafe(12)
    settings = Settings(data_dir=tmp_path, auth=AuthSettings(admin_password=SecretStr(password)))
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        client.headers["x-test-password"] = password
        yield client


def _kids(http: Http) -> list[str]:
    return [key["kid"] for key in http.get("/auth/jwks").json()["keys"]]


def _token(http: Http) -> str:
    auth = ("admin", http.headers["x-test-password"])
    response = http.get("/auth/token", params={"scope": "registry:catalog:*"}, auth=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _accepted(http: Http, token: str) -> bool:
    return http.get("/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_scheduled_rotation_publishes_a_key_and_old_tokens_keep_working(
    temporal_server: TemporalServer, http: Http, tmp_path: Path
) -> None:
    client = await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
    task_queue, schedule_id = f"keys-{uuid.uuid4()}", f"key-rotation-{uuid.uuid4()}"
    old_token = await asyncio.to_thread(_token, http)
    before = await asyncio.to_thread(_kids, http)
    root = compose(Settings(data_dir=tmp_path))
    keys = KeyActivities(root.key_rotation, root.clock)
    activities: list[Callable[..., Any]] = [keys.rotate_signing_key, keys.retire_signing_keys]
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        async with build_worker(
            client, task_queue=task_queue, activities=activities, executor=executor
        ):
            created = await ensure_key_rotation_schedule(
                client,
                task_queue=task_queue,
                every_days=30,
                grace_seconds=3600,
                schedule_id=schedule_id,
            )
            assert created
            schedule = client.get_schedule_handle(schedule_id)
            try:
                await schedule.trigger()
                await _until(lambda: len(_kids(http)) == len(before) + 1, "a new key in the JWKS")
                after = await asyncio.to_thread(_kids, http)
                assert set(before) < set(after)
                assert next(kid for kid in after if kid not in before).startswith("rot-")
                assert await asyncio.to_thread(_accepted, http, old_token)
                await _rerun_same_time(client, schedule_id, task_queue, http, old_token)
            finally:
                await _clean_up(client, schedule_id)


async def _rerun_same_time(
    client: Client, schedule_id: str, task_queue: str, http: Http, old_token: str
) -> None:
    """A second run for the same scheduled time adds no key; its short grace retires."""
    action = (await client.get_schedule_handle(schedule_id).describe()).info.recent_actions[0]
    kids = await asyncio.to_thread(_kids, http)
    result: KeyRotationResult = await client.execute_workflow(
        KeyRotationWorkflow.run,
        KeyRotationInput(grace_seconds=1, scheduled_at=action.scheduled_at.isoformat()),
        id=f"rerun-{uuid.uuid4()}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=BOUND),
    )
    assert not result.added
    assert result.kid in kids
    assert set(result.retired) == set(kids) - {result.kid}
    await _until(lambda: _kids(http) == [result.kid], "the old keys to leave the JWKS")
    assert not await asyncio.to_thread(_accepted, http, old_token)
    assert await asyncio.to_thread(_accepted, http, await asyncio.to_thread(_token, http))


async def _clean_up(client: Client, schedule_id: str) -> None:
    schedule = client.get_schedule_handle(schedule_id)
    with contextlib.suppress(Exception):
        for action in (await schedule.describe()).info.recent_actions:
            started = action.action
            if isinstance(started, ScheduleActionExecutionStartWorkflow):
                with contextlib.suppress(Exception):
                    await client.get_workflow_handle(started.workflow_id).terminate()
    await schedule.delete()
