"""``moorage dev``: the whole registry on one machine, with no external service.

One process runs the HTTP API (uvicorn) and the Temporal worker on one event loop,
beside a Temporal dev server child process that keeps its state under the data dir. The
child is supervised (``cli.temporal_dev.SupervisedDevServer``): restarted if it dies, and
an orphan left by a crashed ``moorage dev`` is stopped before a new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import typer
import uvicorn

from api.app import build_app
from cli.composition import compose
from cli.dev_settings import with_admin_password, with_dev_temporal_address
from cli.health import API_SERVICE, OVERALL, WORKER_SERVICE, HealthServer
from cli.health_tracking import http_ok, track
from cli.heap import freeze_startup_heap
from cli.logs import configure_logging
from cli.outbox_task import installation_subscribers
from cli.signals import exit_on_sigterm, stop_on_signals
from cli.startup import prepare_installation
from cli.temporal_dev import SupervisedDevServer
from cli.tracing import configure_tracing, request_spans
from cli.uvicorn_limits import limited_config
from cli.wiring import build_activities
from cli.worker import run_worker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from temporalio.client import Client

    from cli.listen import Listen
    from core.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Bound on the API's start-up (migrations ran before; this is binding and lifespan).
API_START_TIMEOUT = 60.0


def run_dev(settings: Settings, listen: Listen) -> None:
    """Run Temporal, migrations, the worker and the API until a signal arrives."""
    configure_logging(settings.observability.logs, default_format="console")
    configure_tracing(settings.observability.tracing, "dev")
    exit_on_sigterm()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings = with_admin_password(with_dev_temporal_address(settings))
    temporal = SupervisedDevServer(settings)
    temporal.start()
    try:
        prepare_installation(settings)
        asyncio.run(_serve(settings, listen, temporal))
    finally:
        temporal.stop()


async def _serve(settings: Settings, listen: Listen, temporal: SupervisedDevServer) -> None:
    stop = asyncio.Event()
    with stop_on_signals(asyncio.get_running_loop(), stop.set):
        health = HealthServer((API_SERVICE, WORKER_SERVICE), port=settings.grpc_health_port)
        await health.start()
        try:
            client = await _until_stopped(temporal.ready(), stop)
            if client is not None:
                await _serve_api_and_worker(settings, listen, client, health, stop, temporal)
        finally:
            await health.stop()


async def _until_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``awaitable`` unless ``stop`` is set first (then return None)."""
    work = asyncio.ensure_future(awaitable)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not work.done():
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return None
    return work.result()


def with_local_url(settings: Settings, listen: Listen) -> Settings:
    """``settings`` whose replication reaches this API at its listen address (unless set)."""
    if settings.replication.local_url or settings.public_url:
        return settings
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "") else listen.host  # noqa: S104
    host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
    local = settings.replication.model_copy(update={"local_url": f"http://{host}:{listen.port}"})
    return settings.model_copy(update={"replication": local})


async def _serve_api_and_worker(
    settings: Settings,
    listen: Listen,
    client: Client,
    health: HealthServer,
    stop: asyncio.Event,
    temporal: SupervisedDevServer,
) -> None:
    # One composition root for the API and the worker: one clock, one set of engines.
    root = compose(with_local_url(settings, listen))
    server = uvicorn.Server(
        limited_config(
            build_app(root.registry(), request_spans=request_spans(settings.observability.tracing)),
            host=listen.host,
            port=listen.port,
            limits=settings.server,
            log_config=None,
        )
    )
    polling = asyncio.Event()
    api = asyncio.create_task(server.serve(), name="api")
    worker = asyncio.create_task(
        run_worker(
            settings,
            build_activities(root),
            stop,
            outbox=root.outbox_dispatcher(installation_subscribers()),
            data_plane=(root.metadata, root.store),
            client=client,
            health=health,
            health_services=(WORKER_SERVICE,),
            polling=polling,
        ),
        name="worker",
    )
    freeze_startup_heap()  # NOTE: the app and the activities are built
    supervisor = asyncio.create_task(temporal.supervise(stop), name="temporal")
    tasks = {api, worker, supervisor}
    tracking: asyncio.Task[None] | None = None
    try:
        await _until_stopped(_wait_ready(server, api, worker, polling), stop)
        if not stop.is_set():
            ready = partial(http_ok, listen.host, listen.port, "/readyz")
            interval = settings.observability.health_interval_seconds
            tracking = asyncio.create_task(track(health, (OVERALL, API_SERVICE), ready, interval))
            _announce(settings, listen)
        await _until_stopped(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED), stop)
    finally:
        if tracking is not None:
            tracking.cancel()
        stop.set()
        server.should_exit = True
        await health.set_not_serving(OVERALL, API_SERVICE)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        root.close()
    _raise_first_error(results)


async def _wait_ready(
    server: uvicorn.Server,
    api: asyncio.Task[None],
    worker: asyncio.Task[None],
    polling: asyncio.Event,
) -> None:
    """Return once the API serves and the worker polls; raise if either ends first."""
    async with asyncio.timeout(API_START_TIMEOUT):
        while not (server.started and polling.is_set()):
            for task in (api, worker):
                if task.done():
                    task.result()
                    raise RuntimeError(f"the {task.get_name()} stopped during start-up")
            await asyncio.sleep(0.05)


def _announce(settings: Settings, listen: Listen) -> None:
    typer.echo(f"Moorage registry: {listen.url()}")
    typer.echo(f"Temporal UI:      http://127.0.0.1:{settings.temporal.dev_ui_port}")
    typer.echo(f"Data directory:   {settings.data_dir}")


def _raise_first_error(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
