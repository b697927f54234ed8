"""The request-head timeout uvicorn lacks, and the uvicorn configuration that carries it.

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``),
but it never bounds the time a client takes to send a request head: a new connection that
sends nothing, or trickles its head a byte a second, is kept open for ever. The protocol
here is uvicorn's own httptools protocol plus one timer: armed when a connection opens and
after each response, cancelled when a request head is complete, and closing the connection
when it fires. After a response the next head must be complete within the keep-alive
timeout plus the head timeout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from core.server_settings import ServerSettings


class LimitedConfig(uvicorn.Config):
    """``uvicorn.Config`` with the request-head timeout (pickled to the worker processes)."""

    def __init__(self, app: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


def limited_config(
    app: Any, *, host: str, port: int, limits: ServerSettings, **options: Any
) -> LimitedConfig:
    """The uvicorn configuration of ``app`` with the ``server`` settings' limits applied."""
    return LimitedConfig(
        app,
        header_timeout=limits.header_timeout_seconds,
        host=host,
        port=port,
        http=HeaderTimeoutProtocol,
        backlog=limits.backlog,
        # NOTE: uvicorn answers 503 beyond this many connections (or requests) per worker.
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=max(1, round(limits.keep_alive_timeout_seconds)),
        **options,
    )


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes connections slow to send a request head."""

    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _header_timeout(self) -> float:
        seconds: float = getattr(self.config, "header_timeout", 0.0)
        return seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._header_timeout() > 0:
            self._arm(self._header_timeout())

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and self._header_timeout() > 0 and not self.transport.is_closing():
            self._arm(self.timeout_keep_alive + self._header_timeout())
