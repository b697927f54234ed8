"""The outbox dispatcher: turns committed outbox events into workflow starts.

It runs beside the worker (``run_worker``), independent of Temporal's health: while
Temporal is away, events stay pending (or queued) and are retried with a bounded backoff.

Two kinds of events:

- **run requests** (``gc.requested``, ``retention.requested``) start the run's own
  workflow, named by the run, so a start repeated after a crash is a no-op; the event is
  marked dispatched after its start succeeded;
- **every other event** is fanned out to the subscribers that want it
  (``core.subscribers``): in one transaction the event is queued once per subscriber and
  marked dispatched (for a subscriber with an interest, ``core.subscribers.Interest``,
  only the events it wants, asked just before that transaction). A subscriber's queue
  becomes batches of up to ``event_batch_size`` events (a partial batch once its oldest
  event is ``event_batch_seconds`` old); each batch is stored with its workflow id
  (``core.event_batches.batch_workflow_id``) in the transaction that takes its events off
  the queue. Then, per subscriber, the oldest open batch is started (``EventBatchWorkflow``,
  id reuse rejected) and marked started; once Temporal reports its run closed, it is
  marked closed and the next one starts. A crash between a start and its mark starts the
  same id again: a no-op. So each subscriber gets each event id it wants exactly once, in
  outbox order per repository, one workflow per batch.

Dispatched events (and closed batches) are kept ``outbox_keep_dispatched_seconds``
(0: forever), then pruned at most one batch per poll, each batch in its own short write
transaction; pending events and events still queued for a subscriber are never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

import anyio.to_thread

from activities.contracts import GcInput, RetentionInput
from activities.search_attributes import search_values
from core import events
from core.control_records import OutboxRecord
from core.control_settings import ControlSettings
from core.event_batches import (
    BATCH_WORKFLOW,
    BatchRuns,
    EventBatch,
    EventBatchRecord,
    EventValue,
    batch_search,
    batch_workflow_id,
)
from core.ports import Clock, Metadata, UnitOfWork
from core.subscribers import Interest, Subscriber, Subscribers
from core.trace_context import TRACE_KEY, continued
from core.workflow_port import WorkflowStarter

logger = logging.getLogger(__name__)

#: Longest pause between retries while Temporal is unreachable.
MAX_BACKOFF: Final = 30.0
#: Workflow starts in flight at once.
CONCURRENT_STARTS: Final = 16
#: Seconds between prunes of dispatched events while the last prune found less than a
#: batch (after a full batch, the next poll prunes again).
PRUNE_EVERY: Final = 60.0
#: Batches one subscriber's queue may form per poll.
MAX_FORMED_PER_POLL: Final = 20


def starts_for(event: OutboxRecord) -> list[tuple[str, object, str]]:
    """The workflows a run request starts: (workflow type, argument, workflow id)."""
    if event.kind == events.GC_REQUESTED:
        options = json.loads(event.data or "{}")
        run = GcInput(
            run_id=options["run_id"],
            dry_run=bool(options.get("dry_run", False)),
            delete_untagged=bool(options.get("delete_untagged", False)),
            review_delay_seconds=options.get("review_delay_seconds"),
        )
        return [("GarbageCollectionWorkflow", run, run.run_id)]
    if event.kind == events.RETENTION_REQUESTED:
        options = json.loads(event.data or "{}")
        retention = RetentionInput(
            run_id=options["run_id"],
            project=options["project"],
            dry_run=bool(options.get("dry_run", False)),
        )
        return [("RetentionWorkflow", retention, retention.run_id)]
    return []


def trace_of(event: OutboxRecord) -> dict[str, str] | None:
    """The trace context a run request carries (``core.trace_context``), if any."""
    options = json.loads(event.data or "{}")
    carrier = options.get(TRACE_KEY) if isinstance(options, dict) else None
    return carrier if isinstance(carrier, dict) else None


def search_for(event: OutboxRecord) -> dict[str, str]:
    """Search attributes of the runs ``event`` starts: its project, repository, digest."""
    project = event.repository.partition("/")[0] if event.repository else None
    if event.kind == events.PROJECT_DELETED:
        project = event.data
    elif event.kind == events.RETENTION_REQUESTED:
        project = json.loads(event.data or "{}").get("project")
    return search_values(project=project, repository=event.repository, digest=event.digest)


def batch_search_for(batch: EventBatchRecord) -> dict[str, str]:
    """Search attributes of a batch's run: set where the batch has one repository."""
    project, repository, digest = batch_search(batch.events)
    return search_values(project=project, repository=repository, digest=digest)


#: Prunes one batch of a feature's own log as of the given time; returns how many rows went.
Pruner = Callable[[datetime], int]


class OutboxDispatcher:
    """Polls the outbox, starts run requests and feeds the subscribers' batches.

    Beside dispatching it prunes, now and then: dispatched events and closed batches older
    than ``outbox_keep_dispatched_seconds``, and one batch of each ``pruners`` log (a
    feature's history, such as the webhook delivery log, kept by its own rule).
    """

    def __init__(
        self,
        metadata: Metadata,
        starter: WorkflowStarter,
        settings: ControlSettings,
        *,
        subscribers: Subscribers,
        runs: BatchRuns,
        clock: Clock,
        pruners: Sequence[Pruner] = (),
        interests: Mapping[str, Interest] | None = None,
    ) -> None:
        """Dispatch over ``metadata``.

        ``interests``: by subscriber kind, the events it wants (a subscriber without one
        gets every event of its kinds).
        """
        self._metadata = metadata
        self._interests = dict(interests or {})
        self._pruners = tuple(pruners)
        self._clock = clock
        self._starter = starter
        self._settings = settings
        self._subscribers = subscribers
        self._runs = runs
        self._next_prune = 0.0

    def _pending(self) -> list[OutboxRecord]:
        with self._metadata.read() as session:
            return session.outbox.pending(self._settings.outbox_batch_size)

    def _mark(self, pending: list[OutboxRecord], started: set[int]) -> None:
        """Queue ``pending``'s events for their subscribers and mark them dispatched.

        Run requests are marked only when in ``started``. One transaction: an event is
        queued exactly when it is marked, and only by the dispatcher that marked it (another
        dispatcher may have read the same events as pending and marked, queued and even
        batched them since).
        """
        marked = [
            event.id
            for event in pending
            if event.kind not in events.RUN_REQUESTS or event.id in started
        ]
        if not marked:
            return
        fanned = [event for event in pending if event.kind not in events.RUN_REQUESTS]
        chosen = self._chosen(fanned)
        with self._metadata.write() as session:
            claimed = set(session.outbox.claim_pending(marked, self._clock.now()))
            queued = [
                (s.kind, event.id, event.created_at)
                for event in fanned
                if event.id in claimed
                for s in self._subscribers.wanting(event.kind)
                if s.kind not in chosen or event.id in chosen[s.kind]
            ]
            session.event_queues.queue_events(queued)
            session.commit()

    def _chosen(self, fanned: list[OutboxRecord]) -> dict[str, set[int]]:
        """By subscriber kind with an interest: the ids of ``fanned`` it wants."""
        chosen: dict[str, set[int]] = {}
        values = [EventValue.of(e) for e in fanned] if self._interests else []
        for kind, interest in self._interests.items():
            subscriber = self._subscribers.get(kind)
            if subscriber is None:
                continue
            mine = [value for value in values if value.kind in subscriber.events]
            chosen[kind] = set(interest(mine)) if mine else set()
        return chosen

    async def dispatch_once(self) -> int:
        """One round: fan out pending events, form batches, start or close batches.

        Run requests start concurrently (bounded); the first failure is re-raised after
        the rest of the round was done, so a request that cannot start holds up no
        subscriber.

        Returns:
            How many events, batches and batch runs moved on (0: nothing to do).
        """
        pending = await anyio.to_thread.run_sync(self._pending)
        requests = [event for event in pending if event.kind in events.RUN_REQUESTS]
        limit = asyncio.Semaphore(CONCURRENT_STARTS)

        async def start(event: OutboxRecord) -> int:
            async with limit:
                search = search_for(event)
                with continued(trace_of(event)):
                    for workflow, arg, workflow_id in starts_for(event):
                        await self._starter.start(workflow, arg, workflow_id, search=search)
            return event.id

        results = await asyncio.gather(*(start(e) for e in requests), return_exceptions=True)
        started = {result for result in results if isinstance(result, int)}
        await anyio.to_thread.run_sync(self._mark, pending, started)
        moved = len(pending) - len(requests) + len(started)
        moved += await anyio.to_thread.run_sync(self._form_batches)
        moved += await self._advance_batches()
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return moved

    def _ready(self, session: UnitOfWork, subscriber: Subscriber) -> bool:
        """Whether the subscriber's next batch is full or its oldest event waited enough.

        Decided from the queue's count and oldest time alone: a queue that is still
        filling is not read event by event at every poll.
        """
        size = self._settings.event_batch_size
        count, oldest = session.event_queues.queue_head(subscriber.kind, size)
        if oldest is None:
            return False
        waited = self._clock.now() - oldest
        return count >= size or waited >= timedelta(seconds=self._settings.event_batch_seconds)

    def _form_batches(self) -> int:
        """Turn the subscribers' queues into stored batches; return how many were formed."""
        with self._metadata.read() as session:
            if not any(self._ready(session, s) for s in self._subscribers):
                return 0
        formed = 0
        size = self._settings.event_batch_size
        with self._metadata.write() as session:
            for subscriber in self._subscribers:
                for _ in range(MAX_FORMED_PER_POLL):
                    if not self._ready(session, subscriber):
                        break
                    queued = session.event_queues.queued_events(subscriber.kind, size)
                    batch = [EventValue.of(event) for event in queued]
                    now = self._clock.now()
                    workflow_id = batch_workflow_id(subscriber.kind, batch, now)
                    session.event_queues.add_event_batch(subscriber.kind, workflow_id, batch, now)
                    formed += 1
            session.commit()
        return formed

    def _open_batches(self) -> list[EventBatchRecord]:
        with self._metadata.read() as session:
            return session.event_queues.open_event_batches()

    def _started(self, batch_id: int) -> None:
        with self._metadata.write() as session:
            session.event_queues.event_batch_started(batch_id, self._clock.now())
            session.commit()

    def _closed(self, batch_id: int, outcome: str) -> None:
        with self._metadata.write() as session:
            session.event_queues.event_batch_closed(batch_id, outcome, self._clock.now())
            session.commit()

    async def _advance_batches(self) -> int:
        """Per subscriber: close the open batch whose run ended, or start the next one.

        A subscriber has at most one batch run at a time, which keeps its events in
        order per repository across batches. Returns how many batches moved on.
        """
        moved = 0
        for batch in await anyio.to_thread.run_sync(self._open_batches):
            subscriber = self._subscribers.get(batch.subscriber)
            if subscriber is None:
                continue  # NOTE: served by a dispatcher that registers it
            if batch.started_at is not None:
                try:
                    outcome = await self._runs.closed(batch.workflow_id)
                except LookupError:
                    outcome = ""  # Temporal lost the run: start it again
                if outcome is None:
                    continue
                if outcome:
                    await anyio.to_thread.run_sync(self._closed, batch.id, outcome)
                    moved += 1
                    continue
            arg = EventBatch(
                subscriber.kind,
                subscriber.activity,
                batch.id,
                batch.events,
                heartbeat_seconds=self._settings.event_heartbeat_seconds,
            )
            search = batch_search_for(batch)
            await self._starter.start(BATCH_WORKFLOW, arg, batch.workflow_id, search=search)
            await anyio.to_thread.run_sync(self._started, batch.id)
            moved += 1
        return moved

    def _prune(self, dispatched_before: datetime) -> int:
        limit = self._settings.outbox_batch_size
        with self._metadata.write() as session:
            pruned = session.outbox.prune_dispatched(dispatched_before, limit)
            session.commit()
        with self._metadata.write() as session:
            batches = session.event_queues.prune_event_batches(dispatched_before, limit)
            session.commit()
        return max(pruned, batches)

    async def prune_once(self) -> int:
        """Delete one batch of events dispatched longer ago than the keep time.

        Closed batches older than the keep time go the same way, and one batch of each
        pruner's log.

        Returns:
            The most rows any one of them deleted (0: nothing was due).
        """
        now = self._clock.now()
        keep = self._settings.outbox_keep_dispatched_seconds
        pruned = 0
        if keep:
            cutoff = now - timedelta(seconds=keep)
            pruned = await anyio.to_thread.run_sync(self._prune, cutoff)
        for pruner in self._pruners:
            pruned = max(pruned, await anyio.to_thread.run_sync(pruner, now))
        return pruned

    async def _prune_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        try:
            pruned = await self.prune_once()
        except Exception as exc:  # noqa: BLE001 - retried at the next prune
            logger.warning("outbox prune failed (%s); retrying later", type(exc).__name__)
            pruned = 0
        full = pruned >= self._settings.outbox_batch_size
        self._next_prune = time.monotonic() + (0.0 if full else PRUNE_EVERY)

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set; failures back off and retry."""
        backoff = self._settings.outbox_poll_seconds
        while not stop.is_set():
            try:
                dispatched = await self.dispatch_once()
                backoff = self._settings.outbox_poll_seconds
            except Exception as exc:  # noqa: BLE001 - retried; events stay pending
                logger.warning("outbox dispatch failed (%s); retrying", type(exc).__name__)
                dispatched = 0
                backoff = min(backoff * 2, MAX_BACKOFF)
            await self._prune_when_due()
            if dispatched == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
