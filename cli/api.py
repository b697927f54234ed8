"""``moorage api``: the HTTP data plane under uvicorn, beside a gRPC health service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

import uvicorn

from cli.health import API_SERVICE, OVERALL, BackgroundHealthServer, HealthServer
from cli.signals import exit_on_sigterm
from storage.db.migrate import upgrade

if TYPE_CHECKING:
    from cli.listen import Listen
    from core.settings import Settings

logger = logging.getLogger(__name__)

#: The app factory each uvicorn worker process imports.
ASGI_FACTORY: Final = "cli.asgi:app"
#: Bound on waiting for the API to answer its liveness probe.
LISTEN_TIMEOUT: Final = 120.0
_WILDCARDS: Final = {"0.0.0.0", "::", ""}  # noqa: S104 - only used to pick a probe address


def run_api(settings: Settings, listen: Listen, workers: int) -> None:
    """Migrate the database, then serve the API until SIGTERM or SIGINT."""
    exit_on_sigterm()
    upgrade(settings)
    health = BackgroundHealthServer(HealthServer((API_SERVICE,), port=settings.grpc_health_port))
    health.start()
    health.submit(_serve_when_listening(health.server, listen))
    try:
        uvicorn.run(
            ASGI_FACTORY,
            factory=True,
            host=listen.host,
            port=listen.port,
            workers=workers,
        )
    finally:
        health.stop()


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
