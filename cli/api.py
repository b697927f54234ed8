"""``moorage api``: the HTTP data plane under an ASGI server, beside a gRPC health service.

Two servers are supported (``--server``): granian (the default, chosen by measurement; see
``docs/performance.md``) and uvicorn with httptools and uvloop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from typing import TYPE_CHECKING, Final

from cli.api_metrics import api_metrics
from cli.asgi import PARENT_PID_VARIABLE, prebuild_framework
from cli.download_port import shared_download_port
from cli.health import API_SERVICE, OVERALL, BackgroundHealthServer, HealthServer
from cli.health_tracking import http_ok, track
from cli.heap import freeze_startup_heap
from cli.logs import GRANIAN_LOGGING, configure_logging
from cli.signals import exit_on_sigterm
from cli.startup import prepare_installation

if TYPE_CHECKING:
    from cli.listen import Listen
    from core.server_settings import ServerSettings
    from core.settings import Settings

logger = logging.getLogger(__name__)

#: The app factory each server worker process imports.
ASGI_FACTORY: Final = "cli.asgi:app"
#: The ASGI servers ``moorage api`` can run, the default first.
SERVERS: Final = ("granian", "uvicorn")
DEFAULT_SERVER: Final = "granian"
#: Bound on waiting for the API to answer its liveness probe.
LISTEN_TIMEOUT: Final = 120.0
_WILDCARDS: Final = {"0.0.0.0", "::", ""}  # noqa: S104 - only used to pick a probe address


def run_api(settings: Settings, listen: Listen, workers: int, server: str = DEFAULT_SERVER) -> None:
    """Prepare the installation, then serve the API until SIGTERM or SIGINT.

    Migrations, the first signing key and the admin account are done here, once, before
    the server starts its workers (``cli.startup.prepare_installation``). With granian the
    app's framework is built here too, and the workers forked from this process bind their
    own registries to it (``cli.asgi.prebuild_framework``).

    Args:
        settings: The process settings (each worker process rebuilds its own).
        listen: Where to serve HTTP.
        workers: Server worker processes; each composes its registry and connection pools.
        server: One of :data:`SERVERS`.
    """
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; expected one of {', '.join(SERVERS)}")
    configure_logging(settings.observability.logs)
    exit_on_sigterm()
    os.environ[PARENT_PID_VARIABLE] = str(os.getpid())
    prepare_installation(settings)
    health = BackgroundHealthServer(HealthServer((API_SERVICE,), port=settings.grpc_health_port))
    health.start()
    health.submit(
        _serve_when_listening(health.server, listen, settings.observability.health_interval_seconds)
    )
    try:
        with api_metrics(settings.observability.metrics), shared_download_port(settings):
            if server == "granian":
                _run_granian(listen, workers, settings.server)
            else:
                _run_uvicorn(listen, workers, settings.server)
    finally:
        health.stop()


def _run_uvicorn(listen: Listen, workers: int, limits: ServerSettings) -> None:
    from uvicorn import Server  # noqa: PLC0415 - only the chosen server is loaded
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    from cli.uvicorn_limits import limited_config  # noqa: PLC0415

    config = limited_config(
        ASGI_FACTORY,
        host=listen.host,
        port=listen.port,
        limits=limits,
        factory=True,
        workers=workers,
        loop="uvloop",
        access_log=False,  # NOTE: Moorage writes its own (``api.observe``)
        log_config=None,
    )
    if workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        Server(config).run()


def _run_granian(listen: Listen, workers: int, limits: ServerSettings) -> None:
    from granian import Granian  # noqa: PLC0415 - only the chosen server is loaded
    from granian.constants import HTTPModes, Interfaces, Loops  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    # NOTE: granian forks its workers from this process: each inherits the framework built
    # here and shares the frozen start-up heap's pages (uvicorn spawns new interpreters)
    prebuild_framework()
    freeze_startup_heap()
    Granian(
        ASGI_FACTORY,
        address=listen.host,
        port=listen.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        backlog=limits.backlog,
        # NOTE: granian holds one of these permits per open connection, idle or not.
        backpressure=limits.max_connections,
        # NOTE: hyper's head timeout also bounds the idle time between two requests, so
        # the keep-alive timeout has no knob of its own here.
        http1_settings=HTTP1Settings(header_read_timeout=limits.header_timeout_ms),
        log_access=False,  # NOTE: Moorage writes its own (``api.observe``)
        log_dictconfig=GRANIAN_LOGGING,
        respawn_failed_workers=True,
    ).serve()


async def _serve_when_listening(health: HealthServer, listen: Listen, interval: float) -> None:
    """Once ``GET /healthz`` answers (bounded), let the status follow ``GET /readyz``."""
    host = "127.0.0.1" if listen.host in _WILDCARDS else listen.host
    try:
        async with asyncio.timeout(LISTEN_TIMEOUT):
            while True:
                if await http_ok(host, listen.port, "/healthz"):
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        logger.warning("the API did not answer on %s in time; health stays NOT_SERVING", listen)
        return
    logger.info("API serving on %s", listen.url())
    await track(
        health, (OVERALL, API_SERVICE), partial(http_ok, host, listen.port, "/readyz"), interval
    )
