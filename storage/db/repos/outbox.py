"""The transactional outbox and the subscribers' event queues and batches.

Events are appended inside data-plane units of work (so they commit with the change
that causes them) and drained by the dispatcher (``core.subscribers``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import RowMapping, delete, exists, func, select, update

from core.control_records import OutboxRecord
from core.event_batches import EventBatchRecord, EventValue
from storage.db.control_tables import EventBatchRow, EventQueue, OutboxEvent
from storage.db.direct import DirectStatement
from storage.db.repos.base import SqlRepository, table_of

OUTBOX, QUEUE, BATCH = table_of(OutboxEvent), table_of(EventQueue), table_of(EventBatchRow)
_OUTBOX_COLUMNS = [OUTBOX.c[name] for name in OutboxRecord.__slots__]
#: Appended by every data-plane change (``storage.db.direct``: run on the cursor).
_INSERT_EVENT = DirectStatement(OUTBOX.insert())


class SqlOutbox(SqlRepository):
    """See ``core.control_ports.OutboxRepository``."""

    __slots__ = ()

    def add(
        self,
        kind: str,
        *,
        project_id: int | None = None,
        repository: str | None = None,
        digest: str | None = None,
        tag: str | None = None,
        data: str | None = None,
    ) -> None:
        values = {
            "kind": kind,
            "project_id": project_id,
            "repository": repository,
            "digest": digest,
            "tag": tag,
            "data": data,
            "created_at": datetime.now(UTC),
        }
        # NOTE: a statement built once; the values are parameters of each execution.
        _INSERT_EVENT.rows(self._c, values)

    def keyed_exists(self, kind: str, project_id: int, key: str) -> bool:
        """Whether an event of ``kind`` of the project has ``key`` as its data's ``key``."""
        query = select(OUTBOX.c.data).where(
            OUTBOX.c.kind == kind,
            OUTBOX.c.project_id == project_id,
            OUTBOX.c.data.contains(key, autoescape=True),
        )
        for data in self._c.execute(query).scalars():
            document = json.loads(data)
            if isinstance(document, dict) and document.get("key") == key:
                return True
        return False

    def pending(self, limit: int) -> list[OutboxRecord]:
        query = (
            select(*_OUTBOX_COLUMNS)
            .where(OUTBOX.c.dispatched_at.is_(None))
            .order_by(OUTBOX.c.id)
            .limit(limit)
        )
        return [_outbox_record(row) for row in self._c.execute(query).mappings()]

    def mark_dispatched(self, event_ids: list[int], now: datetime) -> None:
        if event_ids:
            self._c.execute(
                update(OUTBOX).where(OUTBOX.c.id.in_(event_ids)).values(dispatched_at=now)
            )

    def claim_pending(self, event_ids: list[int], now: datetime) -> list[int]:
        if not event_ids:
            return []
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(event_ids), OUTBOX.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
            .returning(OUTBOX.c.id)
        )
        return sorted(int(event_id) for event_id in self._c.execute(claim).scalars())

    def prune_dispatched(self, dispatched_before: datetime, limit: int) -> int:
        queued = exists().where(QUEUE.c.event_id == OUTBOX.c.id)
        oldest = (
            select(OUTBOX.c.id)
            .where(
                OUTBOX.c.dispatched_at.is_not(None),
                OUTBOX.c.dispatched_at < dispatched_before,
                ~queued,
            )
            .order_by(OUTBOX.c.dispatched_at, OUTBOX.c.id)
            .limit(limit)
        )
        return int(self._c.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(oldest))).rowcount)


class SqlEventQueues(SqlRepository):
    """The subscribers' queues and batches; see ``core.event_batches.EventQueueSession``."""

    __slots__ = ()

    def queue_events(self, rows: Sequence[tuple[str, int, datetime]]) -> None:
        if rows:
            values = [{"subscriber": s, "event_id": e, "created_at": t} for s, e, t in rows]
            self._c.execute(QUEUE.insert(), values)

    def queued_events(self, subscriber: str, limit: int) -> list[OutboxRecord]:
        query = (
            select(*_OUTBOX_COLUMNS)
            .join(QUEUE, QUEUE.c.event_id == OUTBOX.c.id)
            .where(QUEUE.c.subscriber == subscriber)
            .order_by(QUEUE.c.event_id)
            .limit(limit)
        )
        return [_outbox_record(row) for row in self._c.execute(query).mappings()]

    def queue_head(self, subscriber: str, limit: int) -> tuple[int, datetime | None]:
        first = (
            select(QUEUE.c.created_at)
            .where(QUEUE.c.subscriber == subscriber)
            .order_by(QUEUE.c.event_id)
            .limit(limit)
            .subquery()
        )
        count, oldest = self._c.execute(
            select(func.count(), func.min(first.c.created_at)).select_from(first)
        ).one()
        return int(count), oldest

    def add_event_batch(
        self, subscriber: str, workflow_id: str, events: Sequence[EventValue], now: datetime
    ) -> int:
        ids = [event.event_id for event in events]
        taken = self._c.execute(
            delete(QUEUE).where(QUEUE.c.subscriber == subscriber, QUEUE.c.event_id.in_(ids))
        ).rowcount
        if taken != len(ids):
            raise RuntimeError(f"{len(ids) - taken} events of {subscriber} were batched already")
        values = {
            "subscriber": subscriber,
            "workflow_id": workflow_id,
            "first_event_id": ids[0],
            "last_event_id": ids[-1],
            "events": json.dumps([asdict(event) for event in events]),
            "created_at": now,
        }
        inserted = self._c.execute(BATCH.insert().values(values).returning(BATCH.c.id))
        return int(inserted.scalar_one())

    def open_event_batches(self) -> list[EventBatchRecord]:
        heads = (
            select(func.min(BATCH.c.id))
            .where(BATCH.c.closed_at.is_(None))
            .group_by(BATCH.c.subscriber)
        )
        query = select(BATCH).where(BATCH.c.id.in_(heads)).order_by(BATCH.c.id)
        return [_batch_record(row) for row in self._c.execute(query).mappings()]

    def event_batch_started(self, batch_id: int, now: datetime) -> None:
        self._c.execute(
            update(BATCH)
            .where(BATCH.c.id == batch_id, BATCH.c.started_at.is_(None))
            .values(started_at=now)
        )

    def event_batch_closed(self, batch_id: int, outcome: str, now: datetime) -> None:
        self._c.execute(
            update(BATCH)
            .where(BATCH.c.id == batch_id, BATCH.c.closed_at.is_(None))
            .values(closed_at=now, outcome=outcome)
        )

    def prune_event_batches(self, closed_before: datetime, limit: int) -> int:
        oldest = (
            select(BATCH.c.id)
            .where(BATCH.c.closed_at.is_not(None), BATCH.c.closed_at < closed_before)
            .order_by(BATCH.c.closed_at, BATCH.c.id)
            .limit(limit)
        )
        return int(self._c.execute(delete(BATCH).where(BATCH.c.id.in_(oldest))).rowcount)


def _outbox_record(row: RowMapping) -> OutboxRecord:
    return OutboxRecord(**{name: row[name] for name in OutboxRecord.__slots__})


def _batch_record(values: RowMapping) -> EventBatchRecord:
    return EventBatchRecord(
        id=values["id"],
        subscriber=values["subscriber"],
        workflow_id=values["workflow_id"],
        first_event_id=values["first_event_id"],
        last_event_id=values["last_event_id"],
        events=[EventValue(**event) for event in json.loads(values["events"])],
        created_at=values["created_at"],
        started_at=values["started_at"],
        closed_at=values["closed_at"],
        outcome=values["outcome"],
    )
