"""SQL for the transactional outbox and the project policies (mixed into ``SqlSession``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Table, delete, exists, func, select, update

from core.control_records import OutboxRecord, Usage
from core.event_batches import EventBatchRecord, EventValue
from core.records import RepositoryRecord
from storage.db.control_tables import EventBatchRow, EventQueue, OutboxEvent, ProjectPolicy
from storage.db.tables import (
    Blob,
    Manifest,
    ManifestChild,
    Project,
    Repository,
    RepositoryBlob,
    Tag,
)


def table_of(model: Any) -> Table:
    table: Table = model.__table__
    return table


OUTBOX, POLICY = table_of(OutboxEvent), table_of(ProjectPolicy)
QUEUE, BATCH = table_of(EventQueue), table_of(EventBatchRow)
_OUTBOX_COLUMNS = [OUTBOX.c[name] for name in OutboxRecord.__slots__]
_PROJECT, _REPOSITORY, _BLOB = table_of(Project), table_of(Repository), table_of(Blob)
_REPO_BLOB, _MANIFEST = table_of(RepositoryBlob), table_of(Manifest)
_TAG, _CHILD = table_of(Tag), table_of(ManifestChild)
_INSERT_EVENT = OUTBOX.insert()


class OutboxQueries:
    """Outbox rows: appended inside data-plane transactions, drained by the dispatcher."""

    _c: Connection
    _dialect: str

    def _insert(self, table: Table) -> Any:
        raise NotImplementedError

    def add_event(
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
        self._c.execute(_INSERT_EVENT, values)

    def keyed_event_exists(self, kind: str, project_id: int, key: str) -> bool:
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

    def pending_events(self, limit: int) -> list[OutboxRecord]:
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

    # subscriber queues and batches (core.event_batches.EventQueueSession)
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

    # policies and usage
    def policy(self, project_id: int, kind: str) -> str | None:
        query = select(POLICY.c.body).where(
            POLICY.c.project_id == project_id, POLICY.c.kind == kind
        )
        return self._c.execute(query).scalar()

    def set_policy(self, project_id: int, kind: str, body: str, now: datetime) -> None:
        statement = self._insert(POLICY).values(
            project_id=project_id, kind=kind, body=body, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=[POLICY.c.project_id, POLICY.c.kind],
            set_={"body": body, "updated_at": now},
        )
        self._c.execute(statement)

    def lock_project(self, project_id: int) -> None:
        if self._dialect == "postgresql":
            query = select(_PROJECT.c.id).where(_PROJECT.c.id == project_id).with_for_update()
            self._c.execute(query)
        # NOTE: SQLite write transactions already hold the database's single write lock.

    def usage(self, project_id: int) -> Usage:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        linked = select(_REPO_BLOB.c.blob_id).where(_REPO_BLOB.c.repository_id.in_(repos))
        blob_bytes = select(func.coalesce(func.sum(_BLOB.c.size), 0)).where(
            _BLOB.c.project_id == project_id, _BLOB.c.id.in_(linked)
        )
        manifests = select(
            func.coalesce(func.sum(_MANIFEST.c.size), 0), func.count(_MANIFEST.c.id)
        ).where(_MANIFEST.c.repository_id.in_(repos))
        blobs = int(self._c.execute(blob_bytes).scalar_one())
        manifest_bytes, count = self._c.execute(manifests).one()
        return Usage(bytes=blobs + int(manifest_bytes), artifacts=int(count))

    def linked_blob_ids_in_project(self, project_id: int, digests: list[str]) -> list[int]:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        query = (
            select(_BLOB.c.id)
            .join(_REPO_BLOB, _REPO_BLOB.c.blob_id == _BLOB.c.id)
            .where(
                _BLOB.c.project_id == project_id,
                _BLOB.c.digest.in_(digests),
                _REPO_BLOB.c.repository_id.in_(repos),
            )
            .distinct()
        )
        return list(self._c.execute(query).scalars())

    def quota_projects(self) -> list[tuple[int, str, str]]:
        query = (
            select(_PROJECT.c.id, _PROJECT.c.name, POLICY.c.body)
            .join(POLICY, POLICY.c.project_id == _PROJECT.c.id)
            .where(POLICY.c.kind == "quota")
            .order_by(_PROJECT.c.id)
        )
        return [(row.id, row.name, row.body) for row in self._c.execute(query)]

    def policy_projects(self, kind: str) -> list[str]:
        query = (
            select(_PROJECT.c.name)
            .join(POLICY, POLICY.c.project_id == _PROJECT.c.id)
            .where(POLICY.c.kind == kind)
            .order_by(_PROJECT.c.name)
        )
        return list(self._c.execute(query).scalars())

    def project_repositories(self, project_id: int) -> list[RepositoryRecord]:
        query = (
            select(
                _REPOSITORY.c.id,
                _REPOSITORY.c.project_id,
                _REPOSITORY.c.name,
                _PROJECT.c.storage_id,
            )
            .join(_PROJECT, _PROJECT.c.id == _REPOSITORY.c.project_id)
            .where(_REPOSITORY.c.project_id == project_id)
            .order_by(_REPOSITORY.c.name)
        )
        return [RepositoryRecord(*row) for row in self._c.execute(query)]

    def artifacts(
        self, repository_id: int
    ) -> list[tuple[str, datetime, list[str], bool, datetime | None]]:
        manifests = select(
            _MANIFEST.c.id,
            _MANIFEST.c.digest,
            _MANIFEST.c.created_at,
            _MANIFEST.c.subject_digest,
            _MANIFEST.c.pulled_at,
        ).where(_MANIFEST.c.repository_id == repository_id)
        tags: dict[int, list[tuple[str, datetime]]] = {}
        tag_rows = select(_TAG.c.manifest_id, _TAG.c.name, _TAG.c.updated_at).where(
            _TAG.c.repository_id == repository_id
        )
        for tag in self._c.execute(tag_rows):
            tags.setdefault(tag.manifest_id, []).append((tag.name, tag.updated_at))
        children = select(_CHILD.c.child_id).join(_MANIFEST, _MANIFEST.c.id == _CHILD.c.parent_id)
        listed = set(
            self._c.execute(children.where(_MANIFEST.c.repository_id == repository_id)).scalars()
        )
        found = []
        for row in self._c.execute(manifests):
            own = tags.get(row.id, [])
            pushed = max([row.created_at, *(updated for _, updated in own)])
            dependent = row.id in listed or row.subject_digest is not None
            tags_of = sorted(name for name, _ in own)
            found.append((row.digest, pushed, tags_of, dependent, row.pulled_at))
        return found

    def linked_blob_sizes(self, project_id: int) -> list[tuple[str, int]]:
        repos = select(_REPOSITORY.c.id).where(_REPOSITORY.c.project_id == project_id)
        linked = select(_REPO_BLOB.c.blob_id).where(_REPO_BLOB.c.repository_id.in_(repos))
        query = (
            select(_BLOB.c.digest, _BLOB.c.size)
            .where(_BLOB.c.project_id == project_id, _BLOB.c.id.in_(linked))
            .order_by(_BLOB.c.digest)
        )
        return [(row.digest, int(row.size)) for row in self._c.execute(query)]


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
