"""Batches of outbox events delivered to one subscriber (``core.subscribers``).

Plain values only: the batch a workflow and its activity receive, the stored batch row,
the batch's workflow id and search attributes, and the port the dispatcher reads and
writes batches through. The id is fixed when the batch is formed and stored with it, so a
start repeated after a crash (or by a second dispatcher) names the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from core.control_records import OutboxRecord

#: Workflow type of a batch's run (``workflows.events.EventBatchWorkflow``).
BATCH_WORKFLOW: Final = "EventBatchWorkflow"


@dataclass(frozen=True, slots=True)
class EventValue:
    """One outbox event, by value (ids, names and digests, never rows).

    Attributes:
        event_id: The outbox row id: a subscriber receives each id once.
        created_at: When the event was written (ISO 8601, UTC).
    """

    event_id: int
    kind: str
    project_id: int | None
    repository: str | None
    digest: str | None
    tag: str | None
    data: str | None
    created_at: str

    @classmethod
    def of(cls, event: OutboxRecord) -> EventValue:
        """The value of a stored outbox event."""
        return cls(
            event.id,
            event.kind,
            event.project_id,
            event.repository,
            event.digest,
            event.tag,
            event.data,
            event.created_at.isoformat(),
        )


@dataclass(frozen=True, slots=True)
class EventBatch:
    """What a subscriber's batch workflow and activity receive.

    Attributes:
        subscriber: The subscriber's kind.
        activity: The activity that handles the batch (the subscriber's).
        batch_id: The stored batch's id.
        events: Its events in outbox order (so in order per repository).
        heartbeat_seconds: The activity attempt's heartbeat timeout: an attempt whose
            worker died is retried after at most this long (0: none, only the
            start-to-close timeout; batches formed before the setting existed).
    """

    subscriber: str
    activity: str
    batch_id: int
    events: list[EventValue]
    heartbeat_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class EventBatchHead:
    """What the batch workflow reads of an :class:`EventBatch`: the activity and its heartbeat.

    The workflow decodes its input as this (the other fields are ignored) and hands the
    input on to the activity unchanged, so a batch of a thousand events is not made into
    a thousand objects inside a workflow task (about 200 ms in the workflow sandbox, where
    the SDK's 2 s deadlock detector times it; the activity decodes them once, outside it).
    The names and meaning are :class:`EventBatch`'s.
    """

    activity: str
    heartbeat_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class EventBatchRecord:
    """A stored batch.

    Attributes:
        workflow_id: The run that delivers it (fixed when formed).
        started_at: When its run was started (``None``: not yet).
        closed_at: When its run was seen closed (``None``: open).
        outcome: How the run closed (``COMPLETED``, ``TERMINATED``, ...).
    """

    id: int
    subscriber: str
    workflow_id: str
    first_event_id: int
    last_event_id: int
    events: list[EventValue]
    created_at: datetime
    started_at: datetime | None
    closed_at: datetime | None
    outcome: str | None


def batch_subject(events: Sequence[EventValue]) -> str:
    """What a batch concerns: its one repository, else ``<n>-repositories`` or ``registry``."""
    repositories = {e.repository for e in events if e.repository}
    if len(repositories) == 1:
        return next(iter(repositories))
    if repositories:
        return f"{len(repositories)}-repositories"
    return "registry"


def batch_execution_id(kind: str, policy_id: int, batch_id: int, batch_run: str) -> str:
    """The id of the execution a policy starts for one event batch (also its workflow id).

    ``<kind>-<policy id>-batch-<batch id>-<12 hex>``: the same for every attempt of the
    batch's activity, so a repeated delivery starts nothing new. The hex is taken from the
    batch run's workflow id (:func:`batch_workflow_id`, which carries the batch's formation
    time): policy and batch ids repeat between databases sharing one Temporal namespace, or
    in a database restored from a backup, where they alone would name a finished run of
    another batch and the new one would never start.
    """
    key = hashlib.sha256(batch_run.encode()).hexdigest()[:12]
    return f"{kind}-{policy_id}-batch-{batch_id}-{key}"


def batch_workflow_id(subscriber: str, events: Sequence[EventValue], formed_at: datetime) -> str:
    """The id of the run delivering ``events`` to ``subscriber``.

    ``events-<subscriber>[-<kind>]-<subject>-<first id>-<last id>-<formed at>``: the event
    kind when the batch has one, the subject of :func:`batch_subject`, the range of event
    ids and the batch's formation time (UTC, to the microsecond). The time keeps ids unique
    between databases sharing one Temporal namespace, or a database restored from a backup
    (whose event ids start again), where the id range alone would make a new batch look like
    a delivered one.
    """
    kinds = {e.kind for e in events}
    parts = ["events", subscriber]
    if len(kinds) == 1:
        parts.append(next(iter(kinds)))
    parts += [
        batch_subject(events),
        str(events[0].event_id),
        str(events[-1].event_id),
        formed_at.strftime("%Y%m%dT%H%M%S%fZ"),
    ]
    return "-".join(parts)


def batch_search(events: Sequence[EventValue]) -> tuple[str | None, str | None, str | None]:
    """(project, repository, digest) shared by every event of a batch (``None`` if not).

    The repository and its project are known when the batch has one repository; the
    digest when, in addition, all its events name the same digest.
    """
    repositories = {e.repository for e in events}
    repository = next(iter(repositories)) if len(repositories) == 1 else None
    if repository is None:
        return None, None, None
    digests = {e.digest for e in events}
    digest = next(iter(digests)) if len(digests) == 1 else None
    return repository.partition("/")[0], repository, digest


class EventQueueSession(Protocol):
    """The outbox's subscriber queues and batches, inside one metadata transaction.

    Queue rows are keyed by (subscriber, event id): an event is queued for a subscriber at
    most once, and a batch takes its rows away in the transaction that stores it.
    """

    def queue_events(self, rows: Sequence[tuple[str, int, datetime]]) -> None:
        """Queue (subscriber, event id, event time) rows; a row already queued fails."""

    def queued_events(self, subscriber: str, limit: int) -> list[OutboxRecord]:
        """The subscriber's first ``limit`` queued events, in outbox order."""

    def queue_head(self, subscriber: str, limit: int) -> tuple[int, datetime | None]:
        """The count of the subscriber's first ``limit`` queued events, and the oldest time.

        The time is ``None`` when nothing is queued; the events themselves are not read.
        """

    def add_event_batch(
        self, subscriber: str, workflow_id: str, events: Sequence[EventValue], now: datetime
    ) -> int:
        """Store a batch and take its events off the subscriber's queue; return its id.

        Raises:
            RuntimeError: Another transaction took some of these events first.
        """

    def open_event_batches(self) -> list[EventBatchRecord]:
        """The oldest batch without a closed run of each subscriber."""

    def event_batch_started(self, batch_id: int, now: datetime) -> None: ...
    def event_batch_closed(self, batch_id: int, outcome: str, now: datetime) -> None: ...
    def prune_event_batches(self, closed_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` batches closed before the time; return how many went."""


class BatchRuns(Protocol):
    """What the dispatcher asks Temporal about a batch's run."""

    async def closed(self, workflow_id: str) -> str | None:
        """How the run closed (``COMPLETED``, ``TERMINATED``, ...), ``None`` while it runs.

        Raises:
            LookupError: Temporal knows no run of that id.
            Exception: Temporal is unreachable (the caller retries later).
        """
        ...
