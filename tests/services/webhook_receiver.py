"""A webhook receiver on loopback for the tests: verifies what it gets, and misbehaves.

An aiohttp app on ``127.0.0.1`` (its own thread and event loop, so synchronous test code
can drive it). Every request is recorded; its Standard Webhooks signature is verified with
the ``standardwebhooks`` package (an implementation independent of ours) against the
secrets the test gave it, and a CloudEvents request is parsed with the ``cloudevents``
SDK. What it answers is programmable: ``ok`` (204), ``fail`` (500), ``gone`` (410),
``throttle`` (429 with ``Retry-After``), ``close`` (drops the connection), ``hang``
(holds the request until released, bounded), ``redirect`` (302 to ``location``), for
the next ``count`` requests (``None``: until changed).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook
from standardwebhooks.exceptions import WebhookVerificationError

#: Longest a ``hang`` holds a request when nobody releases it (seconds).
HANG_BOUND = 120.0


@dataclass
class Received:
    """One request as the receiver saw it."""

    webhook_id: str | None
    path: str
    headers: dict[str, str]
    body: bytes
    verified_with: list[int]
    cloudevent: dict[str, Any] | None
    answered: int | None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Behaviour:
    mode: str = "ok"
    count: int | None = None
    retry_after: str = "1"
    location: str = ""


@dataclass
class WebhookReceiver:
    """The running receiver (start with :func:`start_receiver`)."""

    host: str = "127.0.0.1"
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def set(self, mode: str, count: int | None = None, **options: str) -> None:
        """Answer ``mode`` to the next ``count`` requests (then ``ok``)."""
        with self._lock:
            self.behaviour = Behaviour(mode, count, **options)
            self._release.clear()

    def release(self) -> None:
        """Let held (``hang``) requests go on (they are answered ``ok``)."""
        self._release.set()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """Requests that were answered 2xx and carried a valid signature."""
        return [
            r
            for r in self.snapshot()
            if r.answered is not None and 200 <= r.answered < 300 and r.verified_with
        ]

    def _verify(self, body: bytes, headers: dict[str, str]) -> list[int]:
        good = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            good.append(index)
        return good

    def _next_mode(self) -> Behaviour:
        with self._lock:
            current = self.behaviour
            left = current.count
            if left is not None:
                if left <= 0:
                    self.behaviour = current = Behaviour()
                else:
                    self.behaviour = Behaviour(
                        current.mode, left - 1, current.retry_after, current.location
                    )
            return current

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        cloudevent = None
        if headers.get("content-type", "").startswith("application/cloudevents") or (
            "ce-id" in headers
        ):
            event = from_http_event(HTTPMessage(headers=headers, body=body))
            cloudevent = {
                "id": event.get_id(),
                "type": event.get_type(),
                "source": event.get_source(),
                "subject": event.get_subject(),
                "data": event.get_data(),
            }
        record = Received(
            headers.get("webhook-id"),
            request.path,
            headers,
            body,
            self._verify(body, headers),
            cloudevent,
            None,
        )
        with self._lock:
            self.received.append(record)
        behaviour = self._next_mode()
        status = 204
        response: web.StreamResponse
        if behaviour.mode == "hang":
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, HANG_BOUND)
        elif behaviour.mode == "close":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise ConnectionResetError
        if behaviour.mode == "fail":
            status = 500
        elif behaviour.mode == "gone":
            status = 410
        elif behaviour.mode == "throttle":
            status = 429
        elif behaviour.mode == "redirect":
            status = 302
        record.answered = status
        response = web.Response(status=status, text="" if status == 204 else f"answer {status}")
        if status == 429:
            response.headers["Retry-After"] = behaviour.retry_after
        if status == 302:
            response.headers["Location"] = behaviour.location
        return response

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(app, access_log=None)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port)
                loop.run_until_complete(site.start())
                if self.port == 0:
                    server: Any = site._server
                    self.port = server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Stop listening (the port is kept, so :meth:`start` listens on it again)."""
        self.release()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
        self._loop = self._thread = self._runner = None


def start_receiver(host: str = "127.0.0.1", secrets: list[str] | None = None) -> WebhookReceiver:
    """A started receiver on ``host`` and a free port."""
    receiver = WebhookReceiver(host=host, secrets=list(secrets or []))
    receiver.start()
    return receiver
