"""The dispatcher's pruning of dispatched events: one bounded batch per poll."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.clock import SystemClock
from cli.outbox import OutboxDispatcher
from core.control_records import OutboxRecord
from core.control_settings import ControlSettings
from core.subscribers import builtin_subscribers

KEEP = 3600


class _Outbox:
    """A metadata fake: no pending events; prunes report the queued counts."""

    def __init__(self, prune_counts: list[int], stop: asyncio.Event, polls: int) -> None:
        self.prune_counts = prune_counts
        self.prunes: list[tuple[datetime, int]] = []
        self.batch_prunes: list[tuple[datetime, int]] = []
        self.polls = 0
        self._stop, self._max_polls = stop, polls

    @property
    def outbox(self) -> _Outbox:
        """The unit of work's outbox and event queues: this fake plays them all."""
        return self

    @property
    def event_queues(self) -> _Outbox:
        return self

    def pending(self, limit: int) -> list[OutboxRecord]:
        del limit
        self.polls += 1
        if self.polls >= self._max_polls:
            self._stop.set()
        return []

    def prune_dispatched(self, dispatched_before: datetime, limit: int) -> int:
        self.prunes.append((dispatched_before, limit))
        return self.prune_counts.pop(0) if self.prune_counts else 0

    def prune_event_batches(self, closed_before: datetime, limit: int) -> int:
        self.batch_prunes.append((closed_before, limit))
        return 0

    def queued_events(self, subscriber: str, limit: int) -> list[OutboxRecord]:
        del subscriber, limit
        return []

    def queue_head(self, subscriber: str, limit: int) -> tuple[int, datetime | None]:
        del subscriber, limit
        return 0, None

    def open_event_batches(self) -> list[Any]:
        return []

    def commit(self) -> None:
        pass

    @contextmanager
    def read(self) -> Iterator[_Outbox]:
        yield self

    @contextmanager
    def write(self) -> Iterator[_Outbox]:
        yield self


class _NoStarts:
    async def closed(self, workflow_id: str) -> str | None:
        raise AssertionError(f"no batch to ask about: {workflow_id}")

    async def start(
        self,
        workflow: str,
        arg: object,
        workflow_id: str,
        *,
        search: Mapping[str, str] | None = None,
    ) -> bool:
        del workflow, arg, workflow_id, search
        raise AssertionError("no events to start")


async def _run(outbox: _Outbox, stop: asyncio.Event, keep: int) -> None:
    settings = ControlSettings(
        outbox_poll_seconds=0.01, outbox_batch_size=2, outbox_keep_dispatched_seconds=keep
    )
    metadata: Any = outbox
    dispatcher = OutboxDispatcher(
        metadata,
        _NoStarts(),
        settings,
        subscribers=builtin_subscribers(),
        runs=_NoStarts(),
        clock=SystemClock(),
    )
    await asyncio.wait_for(dispatcher.run(stop), 30)


async def test_full_batches_prune_again_next_poll_then_pruning_rests() -> None:
    stop = asyncio.Event()
    outbox = _Outbox([2, 2, 1], stop, polls=6)
    started = datetime.now(UTC)
    await _run(outbox, stop, KEEP)
    assert outbox.polls == 6
    assert [limit for _, limit in outbox.prunes] == [2, 2, 2]
    assert outbox.batch_prunes == outbox.prunes  # closed batches go with the same cut-off
    for cutoff, _ in outbox.prunes:
        assert started - timedelta(seconds=KEEP + 60) <= cutoff <= datetime.now(UTC)
        assert cutoff <= datetime.now(UTC) - timedelta(seconds=KEEP)


async def test_zero_keeps_dispatched_events_forever() -> None:
    stop = asyncio.Event()
    outbox = _Outbox([2], stop, polls=4)
    await _run(outbox, stop, 0)
    assert outbox.polls == 4
    assert outbox.prunes == []
