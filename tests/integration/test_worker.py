"""The worker against a real Temporal dev server: workflow, schedule and gRPC health."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio import activity
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError

from activities.contracts import REAP_EXPIRED_UPLOADS, ReapUploadsInput, ReapUploadsResult
from cli.health import OVERALL, WORKER_SERVICE, HealthServer
from cli.schedules import (
    REAP_UPLOADS_SCHEDULE_ID,
    ensure_reap_uploads_schedule,
    ensure_schedule,
    reap_uploads_schedule,
)
from cli.worker import ACTIVITY_THREADS, build_worker, run_worker, sticky_wait
from core.settings import LimitSettings, Settings, TemporalSettings
from tests.services.process import free_port
from workflows.uploads import ReapUploadsWorkflow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BOUND = 30.0


@activity.defn(name=REAP_EXPIRED_UPLOADS)
def fake_reap(params: ReapUploadsInput) -> ReapUploadsResult:
    """Stands in for the real reaper: echoes its input so the test sees it arrived."""
    return ReapUploadsResult(sessions_reaped=params.older_than_seconds, storage_leftovers_aborted=7)


@pytest.fixture
async def client(temporal_server: TemporalServer) -> Client:
    return await Client.connect(temporal_server.address, namespace=temporal_server.namespace)


@pytest.fixture
async def health() -> AsyncIterator[HealthServer]:
    server = HealthServer([WORKER_SERVICE])
    await server.start()
    yield server
    await server.stop()


async def health_status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = response.status
        return status


async def test_reap_workflow_runs_the_activity_by_name(client: Client) -> None:
    task_queue = f"test-{uuid.uuid4()}"
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        worker = build_worker(
            client, task_queue=task_queue, activities=[fake_reap], executor=executor
        )
        async with worker:
            result = await client.execute_workflow(
                ReapUploadsWorkflow.run,
                ReapUploadsInput(older_than_seconds=3600),
                id=f"reap-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=BOUND),
            )
    assert result == ReapUploadsResult(sessions_reaped=3600, storage_leftovers_aborted=7)


async def test_the_sticky_queue_wait_is_a_setting(client: Client) -> None:
    """How soon another worker takes a dead worker's workflows (Temporal's default 10 s)."""
    with pytest.raises(ValueError, match="greater than 0"):
        TemporalSettings(sticky_queue_timeout_seconds=0)
    configured = TemporalSettings(sticky_queue_timeout_seconds=1.5)
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        for settings, expected in ((TemporalSettings(), 10.0), (configured, 1.5)):
            worker = build_worker(
                client,
                task_queue=f"test-{uuid.uuid4()}",
                activities=[fake_reap],
                executor=executor,
                sticky_queue_timeout=sticky_wait(settings),
            )
            waited = worker.config()["sticky_queue_schedule_to_start_timeout"]
            assert waited == timedelta(seconds=expected)


async def test_schedule_is_created_once(client: Client) -> None:
    schedule_id = f"test-reap-{uuid.uuid4()}"
    schedule = reap_uploads_schedule(task_queue=f"test-{uuid.uuid4()}", older_than_seconds=60)
    try:
        assert await ensure_schedule(client, schedule_id, schedule) is True
        assert await ensure_schedule(client, schedule_id, schedule) is False

        described = await client.get_schedule_handle(schedule_id).describe()
        assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
        assert await _count_listed(client, schedule_id) == 1
    finally:
        await client.get_schedule_handle(schedule_id).delete()


async def _count_listed(client: Client, schedule_id: str) -> int:
    """How many listed schedules carry ``schedule_id`` (listing is eventually consistent)."""
    async with asyncio.timeout(BOUND):
        while True:
            listed = [s.id async for s in await client.list_schedules() if s.id == schedule_id]
            if listed:
                return len(listed)
            await asyncio.sleep(0.2)


async def test_health_service_reports_status(health: HealthServer) -> None:
    assert await health_status(health.port, OVERALL) == NOT_SERVING
    assert await health_status(health.port, WORKER_SERVICE) == NOT_SERVING
    await health.set_serving(OVERALL, WORKER_SERVICE)
    assert await health_status(health.port, OVERALL) == SERVING
    assert await health_status(health.port, WORKER_SERVICE) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await health_status(health.port, "no.such.service")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_run_worker_polls_schedules_and_reports_health(
    client: Client, temporal_server: TemporalServer, health: HealthServer, tmp_path: Path
) -> None:
    task_queue = f"test-{uuid.uuid4()}"
    settings = Settings(
        data_dir=tmp_path,
        temporal=TemporalSettings(address=temporal_server.address, task_queue=task_queue),
        limits=LimitSettings(upload_ttl_seconds=1234),
    )
    stop, polling = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            settings,
            [fake_reap],
            stop,
            outbox=None,
            client=client,
            health=health,
            health_services=(OVERALL, WORKER_SERVICE),
            polling=polling,
        )
    )
    try:
        async with asyncio.timeout(BOUND):
            await polling.wait()
        assert await health_status(health.port, OVERALL) == SERVING
        assert await health_status(health.port, WORKER_SERVICE) == SERVING

        result = await client.execute_workflow(
            ReapUploadsWorkflow.run,
            ReapUploadsInput(older_than_seconds=settings.limits.upload_ttl_seconds),
            id=f"reap-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=BOUND),
        )
        assert result.sessions_reaped == 1234

        described = await client.get_schedule_handle(REAP_UPLOADS_SCHEDULE_ID).describe()
        assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        # A second start (another replica, a restart) leaves the schedule alone.
        again = await ensure_reap_uploads_schedule(
            client, task_queue=task_queue, older_than_seconds=1234
        )
        assert again is False
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await worker
        await _delete_schedule(client, REAP_UPLOADS_SCHEDULE_ID)
    assert await health_status(health.port, OVERALL) == NOT_SERVING
    assert await health_status(health.port, WORKER_SERVICE) == NOT_SERVING


async def test_run_worker_serves_its_own_health_port(
    client: Client, temporal_server: TemporalServer, tmp_path: Path
) -> None:
    """Without a shared health server, the worker serves one on its port and stops it on exit."""
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        temporal=TemporalSettings(
            address=temporal_server.address, task_queue=f"test-{uuid.uuid4()}"
        ),
        grpc_health_port=port,
    )
    stop, polling = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, [fake_reap], stop, outbox=None, polling=polling)
    )
    try:
        async with asyncio.timeout(BOUND):
            await polling.wait()
        assert await health_status(port, OVERALL) == SERVING
        assert await health_status(port, WORKER_SERVICE) == SERVING
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await worker
        await _delete_schedule(client, REAP_UPLOADS_SCHEDULE_ID)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await health_status(port, OVERALL)
    assert gone.value.code() == grpc.StatusCode.UNAVAILABLE


async def _delete_schedule(client: Client, schedule_id: str) -> None:
    with contextlib.suppress(RPCError):
        await client.get_schedule_handle(schedule_id).delete()
