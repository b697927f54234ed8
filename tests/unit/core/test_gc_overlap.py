"""The blob step's deletions run beside its decisions, one at a time, errors surfacing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import pytest

from core.services.gc_overlap import OverlappedDeletions, collect_blobs_overlapped
from core.services.gc_report import GcReport

if TYPE_CHECKING:
    from core.services.gc import GarbageCollector

DUE = datetime(2026, 12, 4, tzinfo=UTC)
#: Bound on every wait of these tests (a loop that does not overlap would wait forever).
WAIT = 10.0


class FakeCollector:
    """Reviews decided into tombstones, tombstones deleted: counts and concurrency kept."""

    def __init__(self, due: int, referenced_every: int = 4) -> None:
        self.due = list(range(due))
        self.referenced_every = referenced_every
        self.tombstones: list[int] = []
        self.deleted: list[int] = []
        self.decisions = 0
        self.deleting = 0
        self.most_deleting = 0
        self._lock = threading.Lock()
        #: Set when the second decision starts (the first deletion waits for it).
        self.second_decision = threading.Event()
        self.overlapped = False

    def collect_blobs(
        self, due: datetime, limit: int, dry_run: bool, *, run_id: str | None = None
    ) -> GcReport:
        assert (due, dry_run, run_id) == (DUE, False, "run-1")
        self.decisions += 1
        if self.decisions == 2:
            self.second_decision.set()
        with self._lock:
            batch, self.due = self.due[:limit], self.due[limit:]
            kept = [review for review in batch if review % self.referenced_every == 0]
            dead = [review for review in batch if review % self.referenced_every != 0]
            self.tombstones.extend(dead)
        return GcReport(reviewed=len(batch), deleted=len(dead), kept=len(kept))

    def finish_tombstones(self, limit: int, *, run_id: str | None = None) -> int:
        assert run_id == "run-1"
        with self._lock:
            self.deleting += 1
            self.most_deleting = max(self.most_deleting, self.deleting)
            batch, self.tombstones = self.tombstones[:limit], self.tombstones[limit:]
        try:
            if batch and not self.deleted:  # the first deletion: is a decision running beside?
                self.overlapped = self.second_decision.wait(WAIT)
            with self._lock:
                self.deleted.extend(batch)
            return len(batch)
        finally:
            with self._lock:
                self.deleting -= 1


def run(collector: FakeCollector, batch: int, beats: list[int] | None = None) -> tuple[int, ...]:
    decided = collect_blobs_overlapped(
        cast("GarbageCollector", collector),
        DUE,
        batch,
        max_batches=1000,
        run_id="run-1",
        heartbeat=(beats.append if beats is not None else lambda _n: None),
    )
    return decided.reviewed, decided.deleted, decided.kept


def test_every_review_is_decided_and_every_tombstone_deleted() -> None:
    collector = FakeCollector(due=1000)
    beats: list[int] = []
    assert run(collector, batch=64, beats=beats) == (1000, 750, 250)
    assert sorted(collector.deleted) == [r for r in range(1000) if r % 4 != 0]
    assert collector.tombstones == []
    assert sum(beats) == 1000  # a heartbeat per decision with its reviews (and 0s after)


def test_the_next_decision_runs_while_a_batch_is_deleted() -> None:
    collector = FakeCollector(due=300)
    run(collector, batch=100)
    # The first deletion waited for the second decision to start: one after the other,
    # the decision would only start after that deletion returned.
    assert collector.overlapped
    assert collector.most_deleting == 1


def test_nothing_due_deletes_what_earlier_decisions_left() -> None:
    collector = FakeCollector(due=0)
    collector.second_decision.set()
    collector.tombstones = list(range(250))
    assert run(collector, batch=100) == (0, 0, 0)
    assert sorted(collector.deleted) == list(range(250))


def test_a_failed_deletion_is_raised_in_the_callers_thread() -> None:
    calls = 0

    def failing() -> int:
        nonlocal calls
        calls += 1
        raise OSError("the store refused the request")

    def decide_while_deleting() -> None:
        with OverlappedDeletions(failing) as deletions:
            for _ in range(100):
                deletions.wake()
                threading.Event().wait(0.01)

    with pytest.raises(OSError, match="refused"):
        decide_while_deleting()
    assert calls == 1


def test_leaving_the_block_waits_for_the_deletion_in_progress() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def slow() -> int:
        started.set()
        release.wait(WAIT)
        finished.append(True)
        return 1

    with OverlappedDeletions(slow) as deletions:
        assert started.wait(WAIT)
        threading.Timer(0.2, release.set).start()
    assert finished
    assert deletions.taken >= 1
