"""The dispatcher's subscriber queues and batches on each database (Temporal stood in for).

Each test has its own database, so no other test's events reach its dispatcher. The
starter and the run lookup record what the dispatcher asks of Temporal.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.clock import SystemClock
from cli.outbox import OutboxDispatcher
from core import events
from core.event_batches import BATCH_WORKFLOW, EventBatch, EventValue
from core.settings import Settings
from core.subscribers import Interest, Subscriber, Subscribers
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata
from storage.db.migrate import upgrade
from storage.db.repos.outbox import OUTBOX, QUEUE
from tests.conftest import BACKENDS
from tests.services.postgres import Postgres

PUSHES = Subscriber("pushes", frozenset({events.MANIFEST_PUSHED}), "deliver_pushes")
TAGS = Subscriber("tags", frozenset({events.TAG_CREATED, events.MANIFEST_PUSHED}), "deliver_tags")


class FakeTemporal:
    """Records starts; runs stay open until :meth:`finish` (a second start is a no-op)."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, EventBatch, str, dict[str, str]]] = []
        self.closed_runs: dict[str, str] = {}

    async def start(
        self,
        workflow: str,
        arg: object,
        workflow_id: str,
        *,
        search: Mapping[str, str] | None = None,
    ) -> bool:
        if workflow != BATCH_WORKFLOW:
            raise ConnectionError(f"{workflow} cannot start")
        assert isinstance(arg, EventBatch)
        if any(started[2] == workflow_id for started in self.starts):
            return False
        self.starts.append((workflow, arg, workflow_id, dict(search or {})))
        return True

    async def closed(self, workflow_id: str) -> str | None:
        if all(started[2] != workflow_id for started in self.starts):
            raise LookupError(workflow_id)
        return self.closed_runs.get(workflow_id)

    def finish(self) -> None:
        for _, _, workflow_id, _ in self.starts:
            self.closed_runs.setdefault(workflow_id, "COMPLETED")

    def delivered(self, subscriber: str) -> list[int]:
        return [
            e.event_id
            for _, batch, _, _ in self.starts
            if batch.subscriber == subscriber
            for e in batch.events
        ]


@pytest.fixture(params=BACKENDS)
def metadata(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlMetadata]:
    """A migrated database of its own on each backend."""
    base: dict[str, Any] = {"data_dir": tmp_path}
    if request.param == "pg-s3":
        postgres: Postgres = request.getfixturevalue("postgres")
        base["database_url"] = postgres.create_database(f"evb_{secrets.token_hex(4)}")
    settings = Settings(**base)
    upgrade(settings)
    engines = create_engines(settings)
    yield SqlMetadata(engines)
    engines.write.dispose()
    engines.read.dispose()


def _dispatcher(
    metadata: SqlMetadata,
    temporal: FakeTemporal,
    size: int,
    wait: float,
    interests: Mapping[str, Interest] | None = None,
) -> OutboxDispatcher:
    settings = Settings().control.model_copy(
        update={"event_batch_size": size, "event_batch_seconds": wait}
    )
    return OutboxDispatcher(
        metadata,
        temporal,
        settings,
        subscribers=Subscribers([PUSHES, TAGS]),
        runs=temporal,
        clock=SystemClock(),
        interests=interests,
    )


def _add(metadata: SqlMetadata, kind: str, repository: str, count: int) -> None:
    with metadata.write() as session:
        for n in range(count):
            session.outbox.add(kind, repository=repository, digest=f"sha256:{n:064x}")
        session.commit()


def _queued(metadata: SqlMetadata) -> dict[str, int]:
    query = select(QUEUE.c.subscriber, func.count()).group_by(QUEUE.c.subscriber)
    with metadata.read() as session:
        return {row[0]: int(row[1]) for row in session._c.execute(query)}


async def _rounds(dispatcher: OutboxDispatcher, most: int = 10) -> None:
    for _ in range(most):
        if await dispatcher.dispatch_once() == 0:
            return
    raise AssertionError("the dispatcher kept moving")


async def test_full_batches_go_at_once_a_partial_one_waits_for_its_bound(
    metadata: SqlMetadata,
) -> None:
    temporal = FakeTemporal()
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 2)
    await _rounds(_dispatcher(metadata, temporal, size=3, wait=3600))
    assert temporal.starts == []  # two of three: waits
    assert _queued(metadata) == {"pushes": 2, "tags": 2}

    _add(metadata, events.TAG_CREATED, "p/a", 2)
    _add(metadata, events.MANIFEST_PUSHED, "p/b", 2)
    await _rounds(_dispatcher(metadata, temporal, size=3, wait=3600))
    # one full batch per subscriber, started; one run per subscriber at a time
    assert [(w, b.subscriber, len(b.events)) for w, b, _, _ in temporal.starts] == [
        (BATCH_WORKFLOW, "pushes", 3),
        (BATCH_WORKFLOW, "tags", 3),
    ]
    assert _queued(metadata) == {"pushes": 1}  # both of tags' batches are full

    impatient = _dispatcher(metadata, temporal, size=3, wait=0)
    await _rounds(impatient)
    assert len(temporal.starts) == 2  # the next batches wait for the open runs
    temporal.finish()
    await _rounds(impatient)
    temporal.finish()
    await _rounds(impatient)
    assert _queued(metadata) == {}
    pushes, tags = temporal.delivered("pushes"), temporal.delivered("tags")
    assert len(pushes) == 4
    assert len(tags) == 6
    assert pushes == sorted(set(pushes))  # in outbox order, each once
    assert tags == sorted(set(tags))


async def test_ids_and_search_attributes_name_the_subject(metadata: SqlMetadata) -> None:
    temporal = FakeTemporal()
    _add(metadata, events.MANIFEST_PUSHED, "acme/team/app", 1)
    await _rounds(_dispatcher(metadata, temporal, size=1, wait=0))
    (_, batch, workflow_id, search), (_, _, tags_id, _) = temporal.starts
    first = batch.events[0].event_id
    assert workflow_id.startswith(f"events-pushes-manifest.pushed-acme/team/app-{first}-{first}-")
    assert tags_id.startswith("events-tags-manifest.pushed-acme/team/app-")
    assert search == {
        "MoorageProject": "acme",
        "MoorageRepository": "acme/team/app",
        "MoorageDigest": f"sha256:{0:064x}",
    }
    temporal.finish()
    _add(metadata, events.MANIFEST_PUSHED, "acme/one", 1)
    _add(metadata, events.MANIFEST_PUSHED, "acme/two", 1)
    await _rounds(_dispatcher(metadata, temporal, size=2, wait=0))
    _, mixed, mixed_id, mixed_search = temporal.starts[2]
    assert len(mixed.events) == 2
    assert mixed_id.startswith("events-pushes-manifest.pushed-2-repositories-")
    assert mixed_search == {}  # no single repository: nothing to search by


async def test_a_start_not_marked_is_repeated_under_the_same_id(metadata: SqlMetadata) -> None:
    temporal = FakeTemporal()
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 2)

    class DiesBeforeMarking(OutboxDispatcher):
        def _started(self, batch_id: int) -> None:
            raise RuntimeError(f"killed before marking batch {batch_id}")

    dying = DiesBeforeMarking(
        metadata,
        temporal,
        Settings().control.model_copy(update={"event_batch_size": 2}),
        subscribers=Subscribers([PUSHES]),
        runs=temporal,
        clock=SystemClock(),
    )
    with pytest.raises(RuntimeError, match="killed"):
        await dying.dispatch_once()
    (started,) = temporal.starts
    await _rounds(_dispatcher(metadata, temporal, size=2, wait=0))
    assert [s[2] for s in temporal.starts if s[1].subscriber == "pushes"] == [started[2]]
    temporal.finish()
    await _rounds(_dispatcher(metadata, temporal, size=2, wait=0))
    assert temporal.delivered("pushes") == [e.event_id for e in started[1].events]


async def test_an_event_is_queued_once_even_by_a_second_dispatcher(
    metadata: SqlMetadata,
) -> None:
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 3)
    with metadata.read() as session:
        pending = session.outbox.pending(100)
    first, second = (_dispatcher(metadata, FakeTemporal(), 10, 3600) for _ in range(2))
    first._mark(pending, set())
    second._mark(pending, set())  # the same events, read before the first marked them
    assert _queued(metadata) == {"pushes": 3, "tags": 3}


async def test_an_event_batched_already_is_not_queued_again_by_a_second_dispatcher(
    metadata: SqlMetadata,
) -> None:
    """Two workers' dispatchers read the same pending events; the first one marks them and
    batches them (its queue rows are gone) before the second one marks its stale read."""
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 3)
    with metadata.read() as session:
        pending = session.outbox.pending(100)
    temporal = FakeTemporal()
    first, second = (_dispatcher(metadata, temporal, 10, 0) for _ in range(2))
    first._mark(pending, set())
    assert first._form_batches() == 2
    second._mark(pending, set())
    assert _queued(metadata) == {}
    await _rounds(second)
    temporal.finish()
    await _rounds(first)
    assert temporal.delivered("pushes") == [1, 2, 3]
    assert temporal.delivered("tags") == [1, 2, 3]


async def test_events_still_queued_are_never_pruned(metadata: SqlMetadata) -> None:
    temporal = FakeTemporal()
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 2)
    dispatcher = _dispatcher(metadata, temporal, size=3, wait=3600)
    await _rounds(dispatcher)
    with metadata.write() as session:
        session.outbox.mark_dispatched([1, 2], datetime.now(UTC) - timedelta(days=400))
        pruned = session.outbox.prune_dispatched(datetime.now(UTC), 100)
        session.commit()
    assert pruned == 0
    with metadata.read() as session:
        assert session._c.execute(select(func.count()).select_from(OUTBOX)).scalar_one() == 2


async def test_a_run_request_that_cannot_start_holds_up_no_subscriber(
    metadata: SqlMetadata,
) -> None:
    temporal = FakeTemporal()
    with metadata.write() as session:
        session.outbox.add(events.GC_REQUESTED, data=json.dumps({"run_id": "gc-1"}))
        session.commit()
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 1)
    dispatcher = _dispatcher(metadata, temporal, size=1, wait=0)
    with pytest.raises(ConnectionError):
        await dispatcher.dispatch_once()
    assert [batch.subscriber for _, batch, _, _ in temporal.starts] == ["pushes", "tags"]
    with metadata.read() as session:
        assert [e.kind for e in session.outbox.pending(10)] == [events.GC_REQUESTED]


async def test_a_subscriber_with_an_interest_gets_only_the_events_it_wants(
    metadata: SqlMetadata,
) -> None:
    temporal = FakeTemporal()
    asked: list[list[str | None]] = []

    def keep_only(pending: Sequence[EventValue]) -> list[int]:
        asked.append([e.repository for e in pending])
        return [e.event_id for e in pending if (e.repository or "").startswith("keep/")]

    _add(metadata, events.MANIFEST_PUSHED, "keep/a", 2)
    _add(metadata, events.MANIFEST_PUSHED, "drop/b", 2)
    _add(metadata, events.TAG_CREATED, "keep/c", 1)
    await _rounds(_dispatcher(metadata, temporal, size=10, wait=0, interests={"tags": keep_only}))
    # asked once, with every pending event of its kinds, in outbox order
    assert asked == [["keep/a", "keep/a", "drop/b", "drop/b", "keep/c"]]
    pushes, tags = temporal.delivered("pushes"), temporal.delivered("tags")
    assert len(pushes) == 4  # no interest: every event of its kinds
    with metadata.read() as session:
        repository_of = {
            row.id: row.repository
            for row in session._c.execute(select(OUTBOX.c.id, OUTBOX.c.repository))
        }
        assert session.outbox.pending(10) == []  # all dispatched, also those nobody took
    assert [repository_of[i] for i in tags] == ["keep/a", "keep/a", "keep/c"]
    assert _queued(metadata) == {}


async def test_an_interest_that_fails_leaves_the_events_pending_for_the_next_poll(
    metadata: SqlMetadata,
) -> None:
    temporal = FakeTemporal()
    _add(metadata, events.MANIFEST_PUSHED, "p/a", 2)

    def broken(pending: Sequence[EventValue]) -> list[int]:
        raise ConnectionError("the policy store is away")

    with pytest.raises(ConnectionError):
        await _dispatcher(metadata, temporal, 10, 0, {"tags": broken}).dispatch_once()
    assert temporal.starts == []
    with metadata.read() as session:
        assert len(session.outbox.pending(10)) == 2  # nothing marked, nothing queued
    assert _queued(metadata) == {}

    await _rounds(_dispatcher(metadata, temporal, size=10, wait=0))
    assert len(temporal.delivered("pushes")) == 2
    assert len(temporal.delivered("tags")) == 2
