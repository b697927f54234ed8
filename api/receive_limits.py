"""The request-body timeout, enforced where every request enters the app.

Neither ASGI server bounds the wait for the next piece of a request body, so a client
that sends its head and then trickles (or stops sending) its body would hold a request,
its connection and whatever the handler holds for as long as it likes. ``MoorageApp``
wraps ``receive`` of every request that has a body with :func:`bounded_receive`: a wait
longer than ``server.body_timeout_seconds`` raises :class:`BodyTimeoutError`, which the
one error handler (full path) or the ``/v2`` pipeline (fast path) answers with ``408`` and
``Connection: close``, so the server drops the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from core.errors import OCIErrorCode, RegistryError

Receive = Callable[[], Awaitable[Any]]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTimeoutError(RegistryError):
    """The client left its request body unsent for longer than the body timeout."""


def body_timeout(seconds: float) -> BodyTimeoutError:
    """The error of a body that stalled for ``seconds``."""
    return BodyTimeoutError(
        OCIErrorCode.UNKNOWN,
        f"no request body bytes arrived for {seconds:g} seconds",
        status=408,
        headers={"Connection": "close"},
    )


def has_body(scope: Any) -> bool:
    """Whether ``scope`` is an HTTP request whose method carries a body."""
    return scope.get("type") == "http" and scope.get("method") in BODY_METHODS


def bounded_receive(receive: Receive, seconds: float) -> Receive:
    """``receive`` that raises :class:`BodyTimeoutError` after waiting ``seconds``.

    Each call is bounded on its own: a slow but steady client is never cut off, one
    that stops sending is, ``seconds`` after its last piece. Once the body is complete,
    calls are not bounded (a handler may wait for the client to disconnect).
    """
    complete = False

    async def bounded() -> Any:
        nonlocal complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout(seconds):
                message = await receive()
        except TimeoutError:
            raise body_timeout(seconds) from None
        complete = message.get("type") != "http.request" or not message.get("more_body", False)
        return message

    return bounded
