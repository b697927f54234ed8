"""The outbox dispatcher: turns committed outbox events into workflow starts.

It runs beside the worker (``run_worker``), independent of Temporal's health: while
Temporal is away, events stay pending and are retried with a bounded backoff. Workflow
ids derive from the event (``event-<id>``) or from the run the event requests, so a
start repeated after a crash, or by a second dispatcher, is a no-op. An event is marked
dispatched only after all its starts succeeded: delivery is at least once.

Dispatched events are kept ``outbox_keep_dispatched_seconds`` (0: forever), then pruned
at most one batch per poll, each batch in its own short write transaction; pending
events are never pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Final

import anyio.to_thread

from activities.contracts import EventInput, GcInput, RetentionInput
from activities.search_attributes import search_values
from core import events
from core.control_records import OutboxRecord
from core.control_settings import ControlSettings
from core.ports import Metadata
from core.workflow_port import WorkflowStarter

logger = logging.getLogger(__name__)

#: Longest pause between retries while Temporal is unreachable.
MAX_BACKOFF: Final = 30.0
#: Workflow starts in flight at once.
CONCURRENT_STARTS: Final = 16
#: Seconds between prunes of dispatched events while the last prune found less than a
#: batch (after a full batch, the next poll prunes again).
PRUNE_EVERY: Final = 60.0


def starts_for(event: OutboxRecord) -> list[tuple[str, object, str]]:
    """The workflows an event starts: (workflow type, argument, workflow id)."""
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
    if event.kind in events.ARTIFACT_EVENTS:
        params = EventInput(
            event.id, event.kind, event.project_id, event.repository, event.digest, event.tag
        )
        return [("ArtifactEventWorkflow", params, event_workflow_id(event))]
    return []


def event_workflow_id(event: OutboxRecord) -> str:
    """The id of the run an artifact event starts: the same for a re-delivered event.

    The event's creation time is part of it, so ids never collide between databases
    sharing one Temporal namespace (or a database restored from a backup, whose row ids
    start again), where a bare row id would make a new event look like a duplicate.
    """
    return f"event-{event.id}-{int(event.created_at.timestamp() * 1_000_000)}"


def search_for(event: OutboxRecord) -> dict[str, str]:
    """Search attributes of the runs ``event`` starts: its project, repository, digest."""
    project = event.repository.partition("/")[0] if event.repository else None
    if event.kind == events.PROJECT_DELETED:
        project = event.data
    elif event.kind == events.RETENTION_REQUESTED:
        project = json.loads(event.data or "{}").get("project")
    return search_values(project=project, repository=event.repository, digest=event.digest)


class OutboxDispatcher:
    """Polls the outbox and starts the matching workflows."""

    def __init__(
        self, metadata: Metadata, starter: WorkflowStarter, settings: ControlSettings
    ) -> None:
        self._metadata = metadata
        self._starter = starter
        self._settings = settings
        self._next_prune = 0.0

    def _pending(self) -> list[OutboxRecord]:
        with self._metadata.read() as session:
            return session.pending_events(self._settings.outbox_batch_size)

    def _mark(self, event_ids: list[int]) -> None:
        with self._metadata.write() as session:
            session.mark_dispatched(event_ids, datetime.now(UTC))
            session.commit()

    async def dispatch_once(self) -> int:
        """Dispatch one batch; return how many events were marked dispatched.

        The batch's starts run concurrently (bounded); an event is marked only when all
        its starts succeeded, and the first failure is re-raised after marking the rest.
        """
        pending = await anyio.to_thread.run_sync(self._pending)
        limit = asyncio.Semaphore(CONCURRENT_STARTS)

        async def deliver(event: OutboxRecord) -> int:
            async with limit:
                search = search_for(event)
                for workflow, arg, workflow_id in starts_for(event):
                    await self._starter.start(workflow, arg, workflow_id, search=search)
            return event.id

        results = await asyncio.gather(*(deliver(e) for e in pending), return_exceptions=True)
        done = [result for result in results if isinstance(result, int)]
        if done:
            await anyio.to_thread.run_sync(self._mark, done)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(done)

    def _prune(self, dispatched_before: datetime) -> int:
        with self._metadata.write() as session:
            pruned = session.prune_dispatched(dispatched_before, self._settings.outbox_batch_size)
            session.commit()
        return pruned

    async def prune_once(self) -> int:
        """Delete one batch of events dispatched longer ago than the keep time.

        Returns:
            How many were deleted (0 when dispatched events are kept forever).
        """
        keep = self._settings.outbox_keep_dispatched_seconds
        if keep == 0:
            return 0
        cutoff = datetime.now(UTC) - timedelta(seconds=keep)
        return await anyio.to_thread.run_sync(self._prune, cutoff)

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
