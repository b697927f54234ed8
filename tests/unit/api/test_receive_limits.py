"""The request-body timeout (``api.receive_limits``) on a scripted ASGI ``receive``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.receive_limits import BodyTimeoutError, bounded_receive, has_body


def _script(*steps: tuple[float, dict[str, Any]]) -> Any:
    """A ``receive`` that waits ``delay`` seconds before handing each message on."""
    pending = list(steps)

    async def receive() -> dict[str, Any]:
        delay, message = pending.pop(0) if pending else (3600.0, {"type": "http.disconnect"})
        await asyncio.sleep(delay)
        return message

    return receive


def _piece(body: bytes, *, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_that_stops_arriving_is_refused_with_408_and_connection_close() -> None:
    receive = bounded_receive(_script((0.0, _piece(b"ab", more=True))), 0.2)
    assert (await receive())["body"] == b"ab"
    with pytest.raises(BodyTimeoutError) as raised:
        await receive()
    assert raised.value.status == 408
    assert raised.value.headers["Connection"] == "close"


async def test_a_slow_but_steady_body_is_received_whole() -> None:
    steps = [(0.1, _piece(b"x", more=True)) for _ in range(6)]  # 0.6 s in all, 0.1 s a piece
    receive = bounded_receive(_script(*steps, (0.1, _piece(b"y", more=False))), 0.3)
    body = b""
    for _ in range(7):
        body += (await receive())["body"]
    assert body == b"xxxxxxy"


async def test_after_the_last_piece_the_wait_for_a_disconnect_is_not_bounded() -> None:
    steps = (0.0, _piece(b"all", more=False)), (0.3, {"type": "http.disconnect"})
    receive = bounded_receive(_script(*steps), 0.1)
    assert (await receive())["body"] == b"all"
    assert (await receive())["type"] == "http.disconnect"


def test_only_requests_with_a_body_method_are_bounded() -> None:
    assert has_body({"type": "http", "method": "PATCH"})
    assert has_body({"type": "http", "method": "PUT"})
    assert not has_body({"type": "http", "method": "GET"})
    assert not has_body({"type": "lifespan"})
