"""The gRPC health status follows the process's readiness checks (``core.readiness``).

The API's status follows ``GET /readyz`` on its own port (so it tracks exactly what the
HTTP probe checks: database and blob store; Temporal away is degraded, still SERVING);
the worker's follows its dependencies (Temporal, database, blob store): it is
NOT_SERVING while it cannot reach Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio.to_thread

from core.readiness import Dependency, check_all

if TYPE_CHECKING:
    from temporalio.client import Client

    from cli.health import HealthServer
    from core.ports import BlobStore, Metadata

logger = logging.getLogger(__name__)

#: Bound on one check (each dependency, or the HTTP probe).
CHECK_TIMEOUT = 5.0


async def track(
    health: HealthServer,
    services: Sequence[str],
    ready: Callable[[], Awaitable[bool]],
    interval: float,
) -> None:
    """Until cancelled: ``services`` are SERVING while ``ready()`` holds, else NOT_SERVING."""
    serving: bool | None = None
    while True:
        try:
            now = await ready()
        except Exception:  # noqa: BLE001 - a failing check means not ready
            now = False
        if now != serving:
            if now:
                await health.set_serving(*services)
            else:
                await health.set_not_serving(*services)
            if serving is not None:
                logger.warning(
                    "%s now %s",
                    ", ".join(s or "(overall)" for s in services),
                    "SERVING" if now else "NOT_SERVING",
                )
            serving = now
        await asyncio.sleep(interval)


async def http_ok(host: str, port: int, path: str) -> bool:
    """Whether ``GET path`` on ``host:port`` answers 200 within :data:`CHECK_TIMEOUT`."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
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


def worker_dependencies(
    client: Client, data_plane: tuple[Metadata, BlobStore] | None
) -> list[Dependency]:
    """What the worker needs: Temporal to poll, the database and blob store for activities.

    ``data_plane`` is ``None`` for a worker whose activities use neither (tests).
    """

    async def temporal() -> None:
        if not await client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT)):
            raise ConnectionError("Temporal is not serving")

    if data_plane is None:
        return [Dependency("temporal", temporal)]
    metadata, store = data_plane

    async def database() -> None:
        await anyio.to_thread.run_sync(metadata.ping, abandon_on_cancel=True)

    async def storage() -> None:
        await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)

    return [
        Dependency("temporal", temporal),
        Dependency("database", database),
        Dependency("storage", storage),
    ]


def readiness_of(dependencies: Sequence[Dependency]) -> Callable[[], Awaitable[bool]]:
    """A ``ready()`` for :func:`track` over ``dependencies``."""

    async def ready() -> bool:
        readiness = await check_all(dependencies, CHECK_TIMEOUT)
        for result in readiness.results:
            if not result.ok:
                logger.info("readiness: %s fails: %s", result.name, result.error)
        return readiness.ready

    return ready
