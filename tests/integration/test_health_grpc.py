"""gRPC health follows the same checks as readiness, for the API and the worker."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio import activity

from activities.contracts import REAP_EXPIRED_UPLOADS, ReapUploadsInput, ReapUploadsResult
from cli.health import API_SERVICE, OVERALL, WORKER_SERVICE, HealthServer
from cli.worker import run_worker
from core.observability_settings import ObservabilitySettings
from core.settings import Settings, TemporalSettings
from tests.services.http import answers
from tests.services.moorage import start_moorage
from tests.services.process import LOOPBACK, free_port
from tests.services.temporal import start_temporal

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Bound on a status change after its cause (checks run every 0.2 s here).
BOUND = 45.0


@activity.defn(name=REAP_EXPIRED_UPLOADS)
def fake_reap(params: ReapUploadsInput) -> ReapUploadsResult:
    return ReapUploadsResult(sessions_reaped=params.older_than_seconds, storage_leftovers_aborted=0)


async def _status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = response.status
        return status


async def _until_status(port: int, service: str, wanted: int) -> int:
    """The service's status once it is ``wanted`` or :data:`BOUND` passed."""
    deadline = time.monotonic() + BOUND
    status = await _status(port, service)
    while status != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = await _status(port, service)
    return status


async def test_worker_is_not_serving_while_temporal_is_down(tmp_path: Path) -> None:
    temporal = start_temporal(tmp_path / "temporal")
    restarted = None
    health = HealthServer([WORKER_SERVICE])
    await health.start()
    settings = Settings(
        data_dir=tmp_path / "data",
        temporal=TemporalSettings(address=temporal.address, task_queue=f"q-{uuid.uuid4()}"),
        observability=ObservabilitySettings(health_interval_seconds=0.2),
    )
    stop, polling = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        run_worker(settings, [fake_reap], stop, health=health, polling=polling, outbox=None)
    )
    try:
        async with asyncio.timeout(BOUND):
            await polling.wait()
        assert await _status(health.port, WORKER_SERVICE) == SERVING
        temporal.stop()
        assert await _until_status(health.port, WORKER_SERVICE, NOT_SERVING) == NOT_SERVING
        assert await _status(health.port, OVERALL) == NOT_SERVING
        restarted = start_temporal(tmp_path / "temporal", port=temporal.port)
        assert await _until_status(health.port, WORKER_SERVICE, SERVING) == SERVING
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await asyncio.gather(worker, return_exceptions=True)
        await health.stop()
        temporal.stop()
        if restarted is not None:
            restarted.stop()


async def test_api_health_follows_readiness(tmp_path: Path) -> None:
    grpc_port = free_port()
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        # NOTE: Temporal is down (a closed port): degraded, still SERVING.
        "MOORAGE_TEMPORAL__ADDRESS": f"{LOOPBACK}:{free_port()}",
        "MOORAGE_GRPC_HEALTH_PORT": str(grpc_port),
        "MOORAGE_OBSERVABILITY__HEALTH_INTERVAL_SECONDS": "0.2",
    }
    server = start_moorage(tmp_path / "api", env, ["--workers", "1"])
    try:
        assert await _until_status(grpc_port, API_SERVICE, SERVING) == SERVING
        assert await _status(grpc_port, OVERALL) == SERVING
        blobs = tmp_path / "data" / "blobs"
        shutil.rmtree(blobs, ignore_errors=True)
        blobs.write_text("not a directory")  # the blob store fails
        assert await _until_status(grpc_port, API_SERVICE, NOT_SERVING) == NOT_SERVING
        assert not answers(LOOPBACK, server.port, "/readyz")
        assert answers(LOOPBACK, server.port, "/readyz", status=503)
        blobs.unlink()
        assert await _until_status(grpc_port, API_SERVICE, SERVING) == SERVING
    finally:
        server.stop()
