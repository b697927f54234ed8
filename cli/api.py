"""``moorage api``: the HTTP data plane under an ASGI server, beside a gRPC health service.

Two servers are supported (``--server``): granian (the default, chosen by measurement; see
``docs/performance.md``) and uvicorn with httptools and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Final

from cli.asgi import PARENT_PID_VARIABLE
from cli.health import API_SERVICE, OVERALL, BackgroundHealthServer, HealthServer
from cli.signals import exit_on_sigterm
from cli.startup import prepare_installation

if TYPE_CHECKING:
    from cli.listen import Listen
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
    the server starts its workers (``cli.startup.prepare_installation``).

    Args:
        settings: The process settings (each worker process rebuilds its own).
        listen: Where to serve HTTP.
        workers: Server worker processes; each builds the app and its connection pools.
        server: One of :data:`SERVERS`.
    """
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; expected one of {', '.join(SERVERS)}")
    exit_on_sigterm()
    os.environ[PARENT_PID_VARIABLE] = str(os.getpid())
    prepare_installation(settings)
    health = BackgroundHealthServer(HealthServer((API_SERVICE,), port=settings.grpc_health_port))
    health.start()
    health.submit(_serve_when_listening(health.server, listen))
    try:
        if server == "granian":
            _run_granian(listen, workers)
        else:
            _run_uvicorn(listen, workers)
    finally:
        health.stop()


def _run_uvicorn(listen: Listen, workers: int) -> None:
    import uvicorn  # noqa: PLC0415 - only the chosen server is loaded

    uvicorn.run(
        ASGI_FACTORY,
        factory=True,
        host=listen.host,
        port=listen.port,
        workers=workers,
        http="httptools",
        loop="uvloop",
        access_log=False,
    )


def _run_granian(listen: Listen, workers: int) -> None:
    from granian import Granian  # noqa: PLC0415 - only the chosen server is loaded
    from granian.constants import HTTPModes, Interfaces, Loops  # noqa: PLC0415

    Granian(
        ASGI_FACTORY,
        address=listen.host,
        port=listen.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_access=False,
        respawn_failed_workers=True,
    ).serve()


async def _serve_when_listening(health: HealthServer, listen: Listen) -> None:
    """Report SERVING once ``GET /healthz`` answers 200 (bounded)."""
    host = "127.0.0.1" if listen.host in _WILDCARDS else listen.host
    try:
        async with asyncio.timeout(LISTEN_TIMEOUT):
            while True:
                if await _healthz_ok(host, listen.port):
                    break
                await asyncio.sleep(0.2)
    except TimeoutError:
        logger.warning("the API did not answer on %s in time; health stays NOT_SERVING", listen)
        return
    await health.set_serving(OVERALL, API_SERVICE)
    logger.info("API serving on %s", listen.url())


async def _healthz_ok(host: str, port: int) -> bool:
    """Whether ``GET /healthz`` on ``host:port`` answers 200 within a few seconds."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                writer.write(request.encode("ascii"))
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return status_line.split(b" ", 2)[1:2] == [b"200"]
