"""The standard gRPC health service (``grpc.health.v1.Health``) for Moorage processes.

Orchestrators (Kubernetes gRPC probes, ``grpc_health_probe``) ask it whether a process
serves. Every service a process names starts ``NOT_SERVING``; the process flips it to
``SERVING`` once it does its job and back on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable
    from concurrent.futures import Future

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The overall health of a process, by the protocol's convention.
OVERALL: Final = ""
API_SERVICE: Final = "moorage.api"
WORKER_SERVICE: Final = "moorage.worker"
DEFAULT_HOST: Final = "127.0.0.1"

_SERVING: Final[int] = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING: Final[int] = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServer:
    """A grpc.aio server holding only the health service; runs on the caller's loop."""

    def __init__(self, services: Iterable[str], *, port: int = 0, host: str = DEFAULT_HOST) -> None:
        """Prepare the server; nothing listens before :meth:`start`.

        Args:
            services: Service names to report, ``""`` (overall) included if wanted.
            port: TCP port; 0 picks a free one (see :attr:`port` after start).
            host: Address to bind; loopback unless the operator chose otherwise.
        """
        self._services = tuple(services)
        self._host = host
        self._requested_port = port
        self._servicer: Any = None
        self._server: Any = None
        self.port = 0

    async def start(self) -> int:
        """Listen, with every service ``NOT_SERVING``, and return the bound port."""
        self._servicer = health.aio.HealthServicer()
        for service in (OVERALL, *self._services):
            await self._servicer.set(service, _NOT_SERVING)
        self._server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        self.port = int(self._server.add_insecure_port(f"{self._host}:{self._requested_port}"))
        if self.port == 0:
            raise OSError(f"cannot bind the gRPC health server to {self.address}")
        await self._server.start()
        logger.info("gRPC health service listening on %s", self.address)
        return self.port

    @property
    def address(self) -> str:
        """``host:port`` the server listens on (the requested port before start)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self.port or self._requested_port}"

    async def set_serving(self, *services: str) -> None:
        """Report ``SERVING`` for ``services``."""
        for service in services:
            await self._servicer.set(service, _SERVING)

    async def set_not_serving(self, *services: str) -> None:
        """Report ``NOT_SERVING`` for ``services``."""
        for service in services:
            await self._servicer.set(service, _NOT_SERVING)

    async def stop(self, grace: float = 2.0) -> None:
        """Report ``NOT_SERVING`` for everything, then stop listening."""
        if self._server is None:
            return
        await self._servicer.enter_graceful_shutdown()
        await self._server.stop(grace)
        self._server = None


class BackgroundHealthServer:
    """A :class:`HealthServer` on its own thread and loop, beside a blocking server.

    Used by ``moorage api``, where uvicorn owns the main thread (and, with several
    workers, forks processes).
    """

    def __init__(self, server: HealthServer) -> None:
        self._server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="grpc-health", daemon=True)

    def start(self, timeout: float = 10.0) -> int:
        """Start the thread, wait until the server listens, and return its port."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the gRPC health server did not start in time")
        if self._error is not None:
            raise self._error
        return self._server.port

    @property
    def server(self) -> HealthServer:
        """The health server (call its methods through :meth:`submit`)."""
        return self._server

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coroutine`` on the health server's loop (thread-safe)."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the health server is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join the thread (bounded)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        await self._server.start()
        self._loop = asyncio.get_running_loop()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.stop()
