"""What the webhook tests share: settings, the API in process, a worker, the receiver.

The worker (``cli.worker.build_worker`` with ``cli.wiring.build_activities``) and the
outbox dispatcher (``cli.outbox_task`` with the installation's subscribers) run in the
test's event loop; the API runs in Litestar's test client; the receiver
(``tests.services.webhook_receiver``) listens on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import httpx
from litestar.testing import TestClient
from sqlalchemy import select
from temporalio.client import Client

from api.app import create_app
from cli.composition import compose
from cli.outbox_task import installation_subscribers
from cli.wiring import build_activities
from cli.worker import ACTIVITY_THREADS, build_worker
from core.settings import OutboundSettings, Settings
from core.webhook_settings import WebhookSettings
from storage.db.repos.outbox import OUTBOX
from tests.api.oci import OCIClient
from tests.services.control_backends import control_settings
from tests.services.webhook_receiver import WebhookReceiver

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.services.temporal import TemporalServer

#: Bound of every wait (seconds).
BOUND = 180.0

CONTROL: dict[str, Any] = {
    "outbox_poll_seconds": 0.05,
    "event_batch_seconds": 0.2,
    "event_batch_size": 100,
    "gc_every_seconds": 0,
    "policy_every_seconds": 0,
}
FAST_RETRIES: dict[str, Any] = {
    "retry_initial_seconds": 0.2,
    "retry_factor": 2.0,
    "retry_max_interval_seconds": 5.0,
    "pause_after_seconds": 3600,
    "timeout_seconds": 5.0,
}


def webhook_settings(
    backend: str,
    root: Path,
    temporal: TemporalServer,
    request: pytest.FixtureRequest,
    *,
    allow: list[str],
    control: dict[str, Any] | None = None,
    webhooks: dict[str, Any] | None = None,
) -> Settings:
    """Migrated settings with plain http allowed, ``allow`` listed, quick retries."""
    settings = control_settings(
        backend, root, temporal, request, {**CONTROL, **(control or {})}, label="hook"
    )
    return settings.model_copy(
        update={
            "outbound": OutboundSettings(allow=allow, allow_http=True),
            "webhooks": WebhookSettings(**{**FAST_RETRIES, **(webhooks or {})}),
        }
    )


@dataclass
class Api:
    """The API in process, as the admin."""

    settings: Settings
    http: TestClient[Any]
    oci: OCIClient

    @property
    def registry(self) -> Any:
        return self.http.app.state["registry"]

    @property
    def auth(self) -> tuple[str, str]:
        return self.oci.username, self.oci.password

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, auth=self.auth, **kwargs)

    def project(self, name: str) -> None:
        response = self.call("POST", "/api/v1/projects", json={"name": name})
        assert response.status_code == 201, response.text

    def create_webhook(self, project: str | None, **body: Any) -> dict[str, Any]:
        base = f"/api/v1/projects/{project}/webhooks" if project else "/api/v1/webhooks"
        response = self.call("POST", base, json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def deliveries(self, project: str | None, hook: int, **params: Any) -> list[dict[str, Any]]:
        base = f"/api/v1/projects/{project}/webhooks" if project else "/api/v1/webhooks"
        response = self.call("GET", f"{base}/{hook}/deliveries", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["items"]
        return found

    def events(self, kinds: set[str], repositories: list[str]) -> dict[int, str]:
        """Outbox event id -> repository of the events of ``kinds`` in the repositories."""
        query = select(OUTBOX.c.id, OUTBOX.c.repository).where(
            OUTBOX.c.kind.in_(kinds), OUTBOX.c.repository.in_(repositories)
        )
        engines = self.registry.metadata
        with engines.read() as session:
            connection = session._c
            return {row.id: row.repository for row in connection.execute(query)}


@contextlib.contextmanager
def api(settings: Settings) -> Iterator[Api]:
    password = settings.auth.admin_password
    assert password is not None
    with TestClient(create_app(settings)) as http:
        yield Api(settings, http, OCIClient(http, password.get_secret_value()))


@contextlib.asynccontextmanager
async def worker(settings: Settings, api: Api) -> AsyncIterator[Client]:
    """The worker and the outbox dispatcher, in this event loop, until the block ends."""
    del api  # the worker has a composition of its own, as a worker process does
    client = await Client.connect(settings.temporal.address)
    stop = asyncio.Event()
    root = compose(settings)
    dispatcher = root.outbox_dispatcher(installation_subscribers())
    try:
        with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
            running = build_worker(
                client,
                task_queue=settings.temporal.task_queue,
                activities=build_activities(root),
                executor=executor,
            )
            async with running:
                task = asyncio.create_task(dispatcher.run(stop))
                try:
                    yield client
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 30)
    finally:
        root.close()


async def until(condition: Callable[[], bool], *, what: str, timeout: float = BOUND) -> None:
    """Await ``condition`` (checked in a thread), bounded in time and polls."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.1) + 1):
        if await anyio.to_thread.run_sync(condition):
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def first_deliveries(receiver: WebhookReceiver) -> list[str]:
    """Webhook ids in the order of their first verified 2xx delivery."""
    seen: set[str] = set()
    order: list[str] = []
    for record in receiver.delivered():
        if record.webhook_id and record.webhook_id not in seen:
            seen.add(record.webhook_id)
            order.append(record.webhook_id)
    return order


def event_id(webhook_id: str) -> int:
    return int(webhook_id.removeprefix("evt_"))


def assert_in_order_per_repository(order: list[str], events: dict[int, str]) -> None:
    """Each repository's events arrived (first time) in outbox order."""
    for repository in set(events.values()):
        ids = [event_id(w) for w in order if events.get(event_id(w)) == repository]
        assert ids == sorted(ids), repository


async def logged(rig: Api, project: str | None, hook: int, count: int) -> list[dict[str, Any]]:
    """The delivery log once ``count`` deliveries are logged delivered (newest first).

    The receiver sees a delivery before the worker logs it (successes are logged a page
    at a time), so a test reads the log only once it caught up.
    """
    found: list[dict[str, Any]] = []

    def caught_up() -> bool:
        found[:] = rig.deliveries(project, hook)
        return bool(sum(d["status"] == "delivered" for d in found) >= count)

    await until(caught_up, what=f"{count} deliveries logged")
    return found
