"""The event fan-out against a real Temporal dev server.

A burst of manifest pushes through the app reaches two subscribers, the built-in log
subscriber and a test subscriber that records every event it receives in a file. The
first dispatcher is killed right after it started a batch's run and before it marked the
batch started; a second one takes over. Each subscriber gets each event id exactly once,
in outbox order per repository, in at most ``ceil(events / batch size)`` runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import sqlalchemy
from litestar.testing import TestClient
from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client

from activities.events import EventActivities
from adapters.clock import SystemClock
from api.app import create_app
from api.context import Registry
from api.workflow_starter import TemporalStarter
from cli.event_runs import TemporalRuns
from cli.outbox import OutboxDispatcher
from cli.worker import ACTIVITY_THREADS, build_worker
from core import events
from core.event_batches import BATCH_WORKFLOW, EventBatch
from core.settings import Settings
from core.subscribers import LOG, Subscriber, Subscribers
from storage.db.repos.outbox import BATCH, OUTBOX, QUEUE
from tests.api.oci import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    OCIClient,
    digest_of,
    unique_project,
)
from tests.conftest import BACKENDS
from tests.services.control_backends import control_settings
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
#: Manifests pushed, repositories they go to (round robin), events per batch.
PUSHES, REPOSITORIES, BATCH_SIZE = 200, 4, 50
#: Bound of every wait (seconds); polls also stop at :data:`POLLS`.
BOUND, POLLS = 180.0, 5000
DELIVER_TEST = "deliver_events_test"


class Recorder:
    """The test subscriber's activity: appends one JSON line per event it receives.

    Its first batch is held until ``hold_first()`` is true (bounded): the test holds it
    until the next batch was formed and the dispatcher went round twice since, and, if the
    next batch was started meanwhile, until that one delivered. So a dispatcher that
    started a next batch while the first was open would deliver a repository's later
    events first.
    """

    def __init__(self, path: Path, hold_first: Callable[[], bool]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._hold_first: Callable[[], bool] | None = hold_first

    def _hold(self) -> None:
        with self._lock:
            hold, self._hold_first = self._hold_first, None
        deadline = time.monotonic() + BOUND
        for _ in range(POLLS):
            if hold is None or hold() or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    @activity.defn(name=DELIVER_TEST)
    def deliver(self, batch: EventBatch) -> int:
        self._hold()
        workflow_id = activity.info().workflow_id
        lines = [
            json.dumps({"event": e.event_id, "repository": e.repository, "run": workflow_id})
            for e in batch.events
        ]
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
        return len(lines)

    def deliveries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]


TEST_SUBSCRIBER = Subscriber("test", frozenset({events.MANIFEST_PUSHED}), DELIVER_TEST)


class DispatcherKilledError(Exception):
    """The dispatcher died between a batch's start and its mark."""


class KilledAfterStart(OutboxDispatcher):
    """A dispatcher that dies instead of marking its ``victim``-th batch start."""

    def __init__(self, *args: Any, victim: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._victim = victim
        self.marked: list[int] = []
        self.killed_at: int | None = None

    def _started(self, batch_id: int) -> None:
        if len(self.marked) + 1 == self._victim:
            self.killed_at = batch_id
            raise DispatcherKilledError(batch_id)
        super()._started(batch_id)
        self.marked.append(batch_id)


def _connection(session: object) -> sqlalchemy.Connection:
    """The SQL connection under a metadata session (the test reads tables directly)."""
    connection: sqlalchemy.Connection = getattr(session, "_c")  # noqa: B009
    return connection


def _push_burst(oci: OCIClient, repositories: list[str]) -> None:
    """Push :data:`PUSHES` distinct manifests by digest, round robin over the repositories."""
    shared: dict[str, dict[str, Any]] = {}
    for repo in repositories:
        config, layer = json.dumps({"os": "linux", "r": repo}).encode(), uuid.uuid4().bytes * 8
        shared[repo] = {
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": oci.push_blob(repo, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER, "digest": oci.push_blob(repo, layer), "size": len(layer)}
            ],
        }
    for n in range(PUSHES):
        repo = repositories[n % len(repositories)]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            **shared[repo],
            "annotations": {"n": str(n)},
        }
        payload = json.dumps(manifest).encode()
        response = oci.put_manifest(repo, digest_of(payload), payload)
        assert response.status_code == 201, response.text


def _pushed_events(registry: Registry, repositories: list[str]) -> dict[int, str]:
    """Event id -> repository of every ``manifest.pushed`` event of the repositories."""
    query = select(OUTBOX.c.id, OUTBOX.c.repository).where(
        OUTBOX.c.kind == events.MANIFEST_PUSHED, OUTBOX.c.repository.in_(repositories)
    )
    with registry.metadata.read() as session:
        return {row.id: row.repository for row in _connection(session).execute(query)}


def _all_delivered(registry: Registry) -> bool:
    """No event pending, none queued, every batch's run seen closed."""
    with registry.metadata.read() as session:
        pending = (
            _connection(session)
            .execute(select(OUTBOX.c.id).where(OUTBOX.c.dispatched_at.is_(None)))
            .first()
        )
        queued = _connection(session).execute(select(QUEUE.c.event_id)).first()
        running = (
            _connection(session)
            .execute(select(BATCH.c.id).where(BATCH.c.closed_at.is_(None)))
            .first()
        )
    return pending is None and queued is None and running is None


class FirstBatchGate:
    """``hold_first`` of the :class:`Recorder` (see there); counts dispatcher rounds."""

    def __init__(self, recorder_path: Path) -> None:
        self.registry: Registry | None = None
        self.rounds = 0
        self._path = recorder_path
        self._formed_at_round: int | None = None

    def __call__(self) -> bool:
        if self.registry is None:
            return False
        query = select(BATCH.c.workflow_id, BATCH.c.started_at).where(
            BATCH.c.subscriber == TEST_SUBSCRIBER.kind
        )
        with self.registry.metadata.read() as session:
            batches = _connection(session).execute(query.order_by(BATCH.c.id).limit(2)).all()
        if len(batches) < 2:
            return False
        if self._formed_at_round is None:
            self._formed_at_round = self.rounds
        if self.rounds < self._formed_at_round + 2:
            return False
        next_run, next_started = batches[1]
        if next_started is None:
            return True
        return self._path.exists() and next_run in self._path.read_text(encoding="utf-8")


def _batches(registry: Registry) -> list[dict[str, Any]]:
    with registry.metadata.read() as session:
        rows = _connection(session).execute(select(BATCH).order_by(BATCH.c.id)).mappings()
        return [dict(row) for row in rows]


def _settings(
    backend: str, root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> Settings:
    control = {
        "event_batch_size": BATCH_SIZE,
        # NOTE: no partial batch forms during the burst; PUSHES is a multiple of the size.
        "event_batch_seconds": 3600,
        "outbox_poll_seconds": 0.05,
        "gc_every_seconds": 0,
        "policy_every_seconds": 0,
    }
    return control_settings(backend, root, temporal, request, control, label="fan")


async def _run_until(dispatcher: OutboxDispatcher, done: Any, gate: FirstBatchGate) -> None:
    """Dispatch rounds until ``done()`` (bounded in time and rounds), counted on ``gate``."""
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        if await anyio.to_thread.run_sync(done):
            return
        moved = await dispatcher.dispatch_once()
        gate.rounds += 1
        if moved == 0:
            await asyncio.sleep(0.05)
        assert time.monotonic() < deadline, "the fan-out did not finish"
    raise AssertionError("the fan-out did not finish within the poll bound")


async def _runs_by_id(client: Client, task_queue: str, expected: int) -> Counter[str]:
    """Batch runs on the task queue by workflow id, polled until ``expected`` are visible."""
    query = f'WorkflowType = "{BATCH_WORKFLOW}" AND TaskQueue = "{task_queue}"'
    runs: Counter[str] = Counter()
    async with asyncio.timeout(BOUND):
        while sum(runs.values()) < expected:
            runs = Counter([run.id async for run in client.list_workflows(query)])
            if sum(runs.values()) < expected:
                await asyncio.sleep(0.2)
    return runs


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_burst_reaches_each_subscriber_once_in_order_in_few_runs(
    backend: str, tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = _settings(backend, tmp_path, temporal_server, request)
    password = settings.auth.admin_password
    assert password is not None
    gate = FirstBatchGate(tmp_path / "deliveries.jsonl")
    recorder = Recorder(tmp_path / "deliveries.jsonl", gate)
    subscribers = Subscribers([LOG, TEST_SUBSCRIBER])
    client = await Client.connect(temporal_server.address)
    project = unique_project()
    repositories = [f"{project}/app{n}" for n in range(REPOSITORIES)]
    activities = [EventActivities().deliver_events_log, recorder.deliver]
    task_queue = settings.temporal.task_queue
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor, TestClient(create_app(settings)) as http:
        registry: Registry = http.app.state["registry"]
        gate.registry = registry
        oci = OCIClient(http, password.get_secret_value())

        def parts(**extra: Any) -> dict[str, Any]:
            return {
                "subscribers": subscribers,
                "runs": TemporalRuns(settings.temporal),
                "clock": SystemClock(),
                **extra,
            }

        first = KilledAfterStart(
            registry.metadata,
            TemporalStarter(settings.temporal),
            settings.control,
            **parts(victim=2),
        )
        async with build_worker(
            client, task_queue=task_queue, activities=activities, executor=executor
        ):
            pushing = asyncio.create_task(anyio.to_thread.run_sync(_push_burst, oci, repositories))
            with pytest.raises(DispatcherKilledError):
                await _run_until(first, lambda: False, gate)
            await pushing
            second = OutboxDispatcher(
                registry.metadata, TemporalStarter(settings.temporal), settings.control, **parts()
            )
            await _run_until(second, lambda: _all_delivered(registry), gate)
        expected = _pushed_events(registry, repositories)
        batches = _batches(registry)

    assert len(expected) == PUSHES
    delivered = recorder.deliveries()
    # exactly once per event id
    assert sorted(d["event"] for d in delivered) == sorted(expected)
    # in order per repository, and each event with its own repository
    for repo in repositories:
        ids = [d["event"] for d in delivered if d["repository"] == repo]
        assert ids == sorted(ids), repo
        assert {expected[i] for i in ids} == {repo}
    # few runs: one per full batch, never one per push
    test_runs = {d["run"] for d in delivered}
    assert len(test_runs) <= math.ceil(PUSHES / BATCH_SIZE)
    log_batches = [b for b in batches if b["subscriber"] == LOG.kind]
    log_events = [e for b in log_batches for e in json.loads(b["events"])]
    assert len(log_events) == len({e["event_id"] for e in log_events})  # once each
    assert set(expected) <= {e["event_id"] for e in log_events}
    assert len(log_batches) <= math.ceil(len(log_events) / BATCH_SIZE)
    assert {b["outcome"] for b in batches} == {"COMPLETED"}
    # the run whose start was not marked was started again under the same id: a no-op
    assert first.killed_at is not None
    killed = next(b for b in batches if b["id"] == first.killed_at)
    runs = await _runs_by_id(client, task_queue, len(batches))
    assert runs[killed["workflow_id"]] == 1
    assert set(runs) == {b["workflow_id"] for b in batches}
    assert set(runs.values()) == {1}
    assert all(run.startswith(("events-test-manifest.pushed-", "events-log-")) for run in runs)
