"""The Temporal worker process: polls Moorage's task queue and reports its health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from temporalio.worker import Worker

from adapters.temporal_client import connect_temporal
from cli.backup_schedule import ensure_backup_schedule
from cli.health import OVERALL, WORKER_SERVICE, HealthServer
from cli.health_tracking import readiness_of, track, worker_dependencies
from cli.outbox import OutboxDispatcher
from cli.outbox_task import start_outbox_dispatcher
from cli.schedules import (
    ensure_gc_schedule,
    ensure_key_rotation_schedule,
    ensure_quota_schedule,
    ensure_reap_uploads_schedule,
    ensure_retention_schedule,
    ensure_vulndb_schedule,
)
from cli.search_attributes import ensure_search_attributes
from cli.worker_metrics import start_worker_metrics, temporal_runtime
from core.key_rotation import retire_grace
from core.settings import TemporalSettings
from workflows.registered import ALL_WORKFLOWS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from temporalio.client import Client

    from core.ports import BlobStore, Metadata
    from core.settings import Settings

logger = logging.getLogger(__name__)

#: Threads for sync activities (they block on the database and the blob store).
ACTIVITY_THREADS: Final = 16
#: How long running activities get to finish when the worker stops.
GRACEFUL_SHUTDOWN: Final = timedelta(seconds=10)
#: Bound on the worker's start (connection and namespace check).
START_TIMEOUT: Final = 30.0


async def connect_client(settings: Settings) -> Client:
    """Connect to Temporal as configured (the SDK's metrics on ``metrics.temporal_port``)."""
    runtime = temporal_runtime(settings.observability.metrics)
    return await connect_temporal(settings.temporal, runtime)


def sticky_wait(settings: TemporalSettings) -> timedelta:
    """How long a workflow task waits on its last worker's queue (Temporal's sticky queue)."""
    return timedelta(seconds=settings.sticky_queue_timeout_seconds)


#: The settings' default (Temporal's own, 10 s).
DEFAULT_STICKY_WAIT: Final = sticky_wait(TemporalSettings())


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    sticky_queue_timeout: timedelta = DEFAULT_STICKY_WAIT,
) -> Worker:
    """A worker for Moorage's workflows and the given (sync) activities.

    ``sticky_queue_timeout``: :func:`sticky_wait` of the settings.
    """
    return Worker(
        client,
        task_queue=task_queue,
        sticky_queue_schedule_to_start_timeout=sticky_queue_timeout,
        workflows=workflows,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def wait_until_polling(worker: Worker, run: asyncio.Task[None]) -> None:
    """Return once ``worker`` runs; raise if its run ends first (the caller bounds it)."""
    while not worker.is_running:
        if run.done():
            run.result()  # raises the worker's error
            raise RuntimeError("the worker stopped before it started polling")
        await asyncio.sleep(0.05)


async def run_worker(
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    stop: asyncio.Event,
    *,
    outbox: OutboxDispatcher | None,
    data_plane: tuple[Metadata, BlobStore] | None = None,
    client: Client | None = None,
    health: HealthServer | None = None,
    health_services: Sequence[str] = (OVERALL, WORKER_SERVICE),
    polling: asyncio.Event | None = None,
) -> None:
    """Run the worker until ``stop`` is set or the worker fails.

    Ensures Moorage's search attributes (``cli.search_attributes``) and the schedules
    exist, then polls ``settings.temporal.task_queue``. The health
    service reports ``health_services`` SERVING while the worker polls.

    Args:
        settings: The process's settings.
        activities: Activity callables to register (sync ones run on a thread pool).
        stop: Set it to shut down gracefully.
        client: A connected client; one is made from ``settings`` if omitted.
        health: A running health server to report on; if omitted, one is started on
            ``settings.grpc_health_port`` and stopped on return.
        health_services: Services whose status follows the worker's.
        polling: Set once the worker polls (for callers that wait on it).
        outbox: The outbox dispatcher (``cli.outbox``) to run beside the worker, built by
            the composition root (``Composition.outbox_dispatcher``); ``None``: none.
        data_plane: The root's metadata and blob store, checked by the worker's health
            (``None``: the health follows Temporal only, for workers without activities
            that use them).
    """
    async with contextlib.AsyncExitStack() as stack:
        if health is None:
            health = HealthServer(health_services, port=settings.grpc_health_port)
            await health.start()
            stack.push_async_callback(health.stop)
        start_worker_metrics(settings, stack)
        client = client or await connect_client(settings)
        await ensure_search_attributes(client)
        await ensure_reap_uploads_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            older_than_seconds=settings.limits.upload_ttl_seconds,
        )
        executor = stack.enter_context(
            ThreadPoolExecutor(ACTIVITY_THREADS, thread_name_prefix="activity")
        )
        await ensure_gc_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            every_seconds=settings.control.gc_every_seconds,
            delete_untagged=settings.control.gc_delete_untagged,
        )
        await ensure_retention_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            every_seconds=settings.control.policy_every_seconds,
        )
        await ensure_quota_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            every_seconds=settings.control.policy_every_seconds,
        )
        await ensure_key_rotation_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            every_days=settings.auth.key_rotation_days,
            grace_seconds=int(retire_grace(settings.auth.token_ttl_seconds).total_seconds()),
        )
        await ensure_backup_schedule(
            client, task_queue=settings.temporal.task_queue, settings=settings.backup
        )
        vulndb = settings.scan.vulndb
        await ensure_vulndb_schedule(
            client,
            task_queue=settings.temporal.task_queue,
            every_seconds=vulndb.import_every_seconds if vulndb.sources else 0,
        )
        worker = build_worker(
            client,
            task_queue=settings.temporal.task_queue,
            activities=activities,
            executor=executor,
            sticky_queue_timeout=sticky_wait(settings.temporal),
        )
        ready = readiness_of(worker_dependencies(client, data_plane))
        dispatching = start_outbox_dispatcher(outbox, stop) if outbox is not None else None
        try:
            await _poll_until_stopped(
                worker,
                stop,
                _Health(
                    health, health_services, ready, settings.observability.health_interval_seconds
                ),
                polling or asyncio.Event(),
            )
        finally:
            if dispatching is not None:
                dispatching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatching


@dataclass(frozen=True, slots=True)
class _Health:
    """Where the worker reports its health, and the checks the status follows."""

    server: HealthServer
    services: Sequence[str]
    ready: Callable[[], Awaitable[bool]]
    interval: float


async def _poll_until_stopped(
    worker: Worker, stop: asyncio.Event, health: _Health, polling: asyncio.Event
) -> None:
    run = asyncio.create_task(worker.run(), name="temporal-worker")
    tracking: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            await wait_until_polling(worker, run)
        logger.info("worker polling task queue %s", worker.task_queue)
        await health.server.set_serving(*health.services)
        tracking = asyncio.create_task(
            track(health.server, health.services, health.ready, health.interval),
            name="worker-health",
        )
        polling.set()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
    finally:
        if tracking is not None:
            tracking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tracking
        await health.server.set_not_serving(*health.services)
        await _stop_worker(worker, run)


async def _stop_worker(worker: Worker, run: asyncio.Task[None]) -> None:
    """Shut ``worker`` down (bounded) and re-raise its failure, if it failed."""
    if not run.done() and worker.is_running:
        logger.info("worker shutting down")
        shutdown_bound = GRACEFUL_SHUTDOWN.total_seconds() + START_TIMEOUT
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.shutdown(), shutdown_bound)
    if not run.done():
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        return
    await run  # re-raises a worker failure
