"""The GC review queues and orphans: the data plane's side and the collector's side.

On PostgreSQL the collector takes due rows with ``FOR UPDATE SKIP LOCKED`` and reads
what protects them (references, tags) in later statements of its transaction; the push
path locks the same rows before it reads what they protect: ``FOR SHARE`` for what its
transaction is about to reference (``hold_reviews``: concurrent pushes of one image share
the rows and never queue on one another), or an ``UPDATE`` that postpones the review
(``touch_*``, for what stays unreferenced after the push). On SQLite every write
transaction holds the database's write lock, which serialises both: holding is then
a no-op.

Lock order: a statement here that may wait for the locks of several review rows takes
them in digest order, whatever plan the database picks (an ``UPDATE`` otherwise locks
its rows in the order of the index or heap it scans, and that order moves as the rows
are updated: two pushes of one image then each hold a row the other waits for). The
re-arm of a push (``touch_*_reviews``) locks its rows with ``SELECT ... ORDER BY digest
FOR UPDATE`` in the same statement as its ``UPDATE``; a hold is one statement whose
sub-selects take the blob rows, then the manifest rows, each ``ORDER BY digest FOR
SHARE`` (PostgreSQL locks the rows as the sorted rows come out). The
collector's writes change only rows it already holds (its ``SKIP LOCKED`` reads never
wait), so they cannot close a cycle; they still go in digest order, a chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Table, bindparam, delete, exists, func, select, update

from core.control_records import QUARANTINED, BlobReview, ManifestReview
from storage.db.control_tables import GcBlobReview, GcManifestReview, GcOrphan
from storage.db.direct import DirectStatement
from storage.db.repos.base import RecordMap, SqlRepository, dialect_inserts, table_of
from storage.db.tables import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Project,
    Repository,
    RepositoryBlob,
    Tag,
)
from storage.db.value_lists import DIALECTS, in_list, list_value

BLOB_REVIEW, MANIFEST_REVIEW = table_of(GcBlobReview), table_of(GcManifestReview)
ORPHAN = table_of(GcOrphan)
_BLOB, _MANIFEST, _MB, _MC = (
    table_of(Blob),
    table_of(Manifest),
    table_of(ManifestBlob),
    table_of(ManifestChild),
)
_TAG, _REPO_BLOB, _PROJECT, _REPOSITORY = (
    table_of(Tag),
    table_of(RepositoryBlob),
    table_of(Project),
    table_of(Repository),
)
_BLOB_REVIEW_COLUMNS = (
    BLOB_REVIEW.c.project_id,
    BLOB_REVIEW.c.digest,
    BLOB_REVIEW.c.storage_id,
    BLOB_REVIEW.c.state,
    BLOB_REVIEW.c.event,
    BLOB_REVIEW.c.size,
)


def _touch_statement(table: Table, owner: Column[Any], dialect: str) -> Any:
    """Re-arm the reviews of the ``digests`` of ``owner``.

    On PostgreSQL the rows are locked in digest order first (a materialised
    ``SELECT ... ORDER BY digest FOR UPDATE`` that the ``UPDATE`` joins), in the same
    statement and snapshot, so it re-arms exactly the rows a plain ``UPDATE`` would. On
    SQLite the database's write lock serialises writers: a plain ``UPDATE``.
    """
    where = (owner == bindparam("owner"), in_list(table.c.digest, "digests", dialect))
    values: dict[str, Any] = {"queued_at": bindparam("now"), "review_after": bindparam("after")}
    if dialect != "postgresql":
        return update(table).where(*where).values(values)
    locked = (
        select(owner.label("owner"), table.c.digest)
        .where(*where)
        .order_by(table.c.digest)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(table)
        .where(owner == locked.c.owner, table.c.digest == locked.c.digest)
        .values(values)
    )


def _held(
    table: Table, owner: Column[Any], owner_name: str, digests_name: str, *pending: Any
) -> Any:
    """How many reviews of ``owner``'s ``digests`` (matching ``pending``) were share-locked."""
    locked = (
        select(table.c.digest)
        .where(
            owner == bindparam(owner_name),
            in_list(table.c.digest, digests_name, "postgresql"),
            *pending,
        )
        .order_by(table.c.digest)
        .with_for_update(read=True)
        .subquery()
    )
    return select(func.count()).select_from(locked).scalar_subquery()


# NOTE: the statements a manifest push runs are built once (see ``storage.db.repos.manifests``).
# One statement for both tables (PostgreSQL only): the blob rows, then the manifest rows
# (a target list's sub-selects run in order), each locked in digest order.
_HOLD_REVIEWS = DirectStatement(
    select(
        _held(
            BLOB_REVIEW,
            BLOB_REVIEW.c.project_id,
            "project_id",
            "blobs",
            BLOB_REVIEW.c.state == "review",
        ),
        _held(MANIFEST_REVIEW, MANIFEST_REVIEW.c.repository_id, "repository_id", "manifests"),
    )
)


def _enqueue_manifest_review(statement: Any) -> DirectStatement:
    """Queue a manifest's review, or re-queue it with the new event and times."""
    excluded = statement.excluded
    return DirectStatement(
        statement.on_conflict_do_update(
            index_elements=[MANIFEST_REVIEW.c.repository_id, MANIFEST_REVIEW.c.digest],
            set_={
                "event": excluded.event,
                "queued_at": excluded.queued_at,
                "review_after": excluded.review_after,
            },
        )
    )


_ENQUEUE_MANIFEST_REVIEW = {
    dialect: _enqueue_manifest_review(statement)
    for dialect, statement in dialect_inserts(MANIFEST_REVIEW).items()
}
_TOUCH_MANIFEST_REVIEWS = {
    dialect: _touch_statement(MANIFEST_REVIEW, MANIFEST_REVIEW.c.repository_id, dialect)
    for dialect in DIALECTS
}
_BLOB_REVIEW = RecordMap(BlobReview, select(*_BLOB_REVIEW_COLUMNS))
_MANIFEST_REVIEW_COLUMNS = (
    MANIFEST_REVIEW.c.repository_id,
    MANIFEST_REVIEW.c.digest,
    MANIFEST_REVIEW.c.event,
    _REPOSITORY.c.project_id,
    _PROJECT.c.storage_id,
    _REPOSITORY.c.name.label("repository"),
)
_MANIFEST_REVIEW = RecordMap(ManifestReview, select(*_MANIFEST_REVIEW_COLUMNS))


class SqlReviewQueue(SqlRepository):
    """What the data plane writes to the review queues; see ``ReviewQueueRepository``."""

    __slots__ = ()

    def enqueue_blob_review(
        self, project_id: int, storage_id: str, digest: str, event: str, review_after: datetime
    ) -> None:
        now = datetime.now(UTC)
        statement = self._insert(BLOB_REVIEW).values(
            project_id=project_id,
            digest=digest,
            storage_id=storage_id,
            state="review",
            event=event,
            queued_at=now,
            review_after=review_after,
            review_count=0,
            size=0,
        )
        # NOTE: DO UPDATE, never DO NOTHING: a review the collector is about to take is re-armed.
        statement = statement.on_conflict_do_update(
            index_elements=[BLOB_REVIEW.c.project_id, BLOB_REVIEW.c.digest],
            set_={"event": event, "queued_at": now, "review_after": review_after},
            where=BLOB_REVIEW.c.state == "review",
        )
        self._c.execute(statement)

    def blob_tombstoned(self, project_id: int, digest: str) -> bool:
        return self.blob_review_state(project_id, digest) == "deleting"

    def blob_review_state(self, project_id: int, digest: str) -> str | None:
        query = select(BLOB_REVIEW.c.state).where(
            BLOB_REVIEW.c.project_id == project_id, BLOB_REVIEW.c.digest == digest
        )
        state: str | None = self._c.execute(self._locking(query)).scalar()
        return state

    def enqueue_manifest_review(
        self, repository_id: int, digest: str, event: str, review_after: datetime
    ) -> None:
        values = {
            "repository_id": repository_id,
            "digest": digest,
            "event": event,
            "queued_at": datetime.now(UTC),
            "review_after": review_after,
            "review_count": 0,
        }
        _ENQUEUE_MANIFEST_REVIEW[self._dialect].rows(self._c, values)

    def touch_manifest_reviews(
        self, repository_id: int, digests: list[str], review_after: datetime
    ) -> None:
        self._touch(_TOUCH_MANIFEST_REVIEWS, repository_id, digests, review_after)

    def hold_reviews(
        self,
        project_id: int,
        blob_digests: list[str],
        repository_id: int,
        manifest_digests: list[str],
    ) -> None:
        if self._dialect != "postgresql" or not (blob_digests or manifest_digests):
            return
        params = {
            "project_id": project_id,
            "blobs": list(blob_digests),
            "repository_id": repository_id,
            "manifests": list(manifest_digests),
        }
        _HOLD_REVIEWS.rows(self._c, params)

    def _touch(
        self, statements: dict[str, Any], owner: int, digests: list[str], after: datetime
    ) -> None:
        """Postpone the pending reviews of ``digests`` under ``owner`` (project or repository)."""
        params = {
            "owner": owner,
            "digests": list_value(self._dialect, digests),
            "now": datetime.now(UTC),
            "after": after,
        }
        self._c.execute(statements[self._dialect], params)


class SqlCollector(SqlRepository):
    """What the collector reads and deletes, under the review rows' locks."""

    __slots__ = ()

    def due_blob_reviews(self, due: datetime, limit: int, lock: bool) -> list[BlobReview]:
        query = (
            select(*_BLOB_REVIEW_COLUMNS)
            .where(BLOB_REVIEW.c.state == "review", BLOB_REVIEW.c.queued_at <= due)
            .order_by(BLOB_REVIEW.c.queued_at)
            .limit(limit)
        )
        if lock:
            query = self._locking(query, skip_locked=True)
        return [_BLOB_REVIEW(row) for row in self._c.execute(query)]

    def blob_tombstones(
        self, limit: int, lock: bool, *, quarantined: bool = False
    ) -> list[BlobReview]:
        marked = BLOB_REVIEW.c.event == QUARANTINED
        query = (
            select(*_BLOB_REVIEW_COLUMNS)
            .where(BLOB_REVIEW.c.state == "deleting", marked if quarantined else ~marked)
            .limit(limit)
        )
        if lock:
            query = self._locking(query, skip_locked=True)
        return [_BLOB_REVIEW(row) for row in self._c.execute(query)]

    def referenced_blobs(self, project_id: int, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(digests):
            query = (
                select(_BLOB.c.digest)
                .where(
                    _BLOB.c.project_id == project_id,
                    _BLOB.c.digest.in_(chunk),
                    exists().where(_MB.c.blob_id == _BLOB.c.id),
                )
                .distinct()
            )
            found.update(self._c.execute(query).scalars())
        return found

    def blob_sizes(self, project_id: int, digests: list[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for chunk in _chunks(digests):
            query = select(_BLOB.c.digest, _BLOB.c.size).where(
                _BLOB.c.project_id == project_id, _BLOB.c.digest.in_(chunk)
            )
            sizes.update((row.digest, row.size) for row in self._c.execute(query))
        return sizes

    def delete_blob_rows(self, project_id: int, digests: list[str]) -> None:
        for chunk in _chunks(digests):
            blob_ids = select(_BLOB.c.id).where(
                _BLOB.c.project_id == project_id, _BLOB.c.digest.in_(chunk)
            )
            self._c.execute(delete(_REPO_BLOB).where(_REPO_BLOB.c.blob_id.in_(blob_ids)))
            self._c.execute(
                delete(_BLOB).where(_BLOB.c.project_id == project_id, _BLOB.c.digest.in_(chunk))
            )

    def set_blob_tombstones(self, project_id: int, sizes: dict[str, int]) -> None:
        if not sizes:
            return
        statement = (
            update(BLOB_REVIEW)
            .where(
                BLOB_REVIEW.c.project_id == bindparam("tomb_project"),
                BLOB_REVIEW.c.digest == bindparam("tomb_digest"),
            )
            .values(state="deleting", size=bindparam("tomb_size"))
        )
        rows = [
            {"tomb_project": project_id, "tomb_digest": digest, "tomb_size": size}
            for digest, size in sorted(sizes.items())
        ]
        self._c.execute(statement, rows)

    def quarantine_blob_tombstones(self, project_id: int, digests: list[str]) -> None:
        for chunk in _chunks(digests):
            self._c.execute(
                update(BLOB_REVIEW)
                .where(
                    BLOB_REVIEW.c.project_id == project_id,
                    BLOB_REVIEW.c.digest.in_(chunk),
                    BLOB_REVIEW.c.state == "deleting",
                )
                .values(event=QUARANTINED)
            )

    def drop_blob_reviews(self, project_id: int, digests: list[str]) -> None:
        for chunk in _chunks(digests):
            self._c.execute(
                delete(BLOB_REVIEW).where(
                    BLOB_REVIEW.c.project_id == project_id, BLOB_REVIEW.c.digest.in_(chunk)
                )
            )

    def drop_blob_review(self, project_id: int, digest: str) -> None:
        self._c.execute(
            delete(BLOB_REVIEW).where(
                BLOB_REVIEW.c.project_id == project_id, BLOB_REVIEW.c.digest == digest
            )
        )

    def due_manifest_reviews(self, due: datetime, limit: int, lock: bool) -> list[ManifestReview]:
        query = (
            select(*_MANIFEST_REVIEW_COLUMNS)
            .outerjoin(_REPOSITORY, _REPOSITORY.c.id == MANIFEST_REVIEW.c.repository_id)
            .outerjoin(_PROJECT, _PROJECT.c.id == _REPOSITORY.c.project_id)
            .where(MANIFEST_REVIEW.c.queued_at <= due)
            .order_by(MANIFEST_REVIEW.c.queued_at)
            .limit(limit)
        )
        if lock and self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=MANIFEST_REVIEW)
        return [_MANIFEST_REVIEW(row) for row in self._c.execute(query)]

    def manifest_kept_by(self, repository_id: int, digest: str) -> str | None:
        row = self._c.execute(
            select(_MANIFEST.c.id, _MANIFEST.c.subject_digest).where(
                _MANIFEST.c.repository_id == repository_id, _MANIFEST.c.digest == digest
            )
        ).first()
        if row is None:
            return "already deleted"
        if self._c.execute(select(exists().where(_TAG.c.manifest_id == row.id))).scalar():
            return "tagged"
        if self._c.execute(select(exists().where(_MC.c.child_id == row.id))).scalar():
            return "listed by an index"
        if row.subject_digest is not None:
            subject = exists().where(
                _MANIFEST.c.repository_id == repository_id,
                _MANIFEST.c.digest == row.subject_digest,
            )
            if self._c.execute(select(subject)).scalar():
                return "refers to a stored subject"
        return None

    def drop_manifest_review(self, repository_id: int, digest: str) -> None:
        self._c.execute(
            delete(MANIFEST_REVIEW).where(
                MANIFEST_REVIEW.c.repository_id == repository_id,
                MANIFEST_REVIEW.c.digest == digest,
            )
        )

    # orphans
    def tenants(self) -> list[tuple[int, str]]:
        query = select(_PROJECT.c.id, _PROJECT.c.storage_id).order_by(_PROJECT.c.id)
        return [(row.id, row.storage_id) for row in self._c.execute(query)]

    def tombstoned_blobs(self, storage_id: str, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(digests):
            query = select(BLOB_REVIEW.c.digest).where(
                BLOB_REVIEW.c.storage_id == storage_id,
                BLOB_REVIEW.c.digest.in_(chunk),
                BLOB_REVIEW.c.state == "deleting",
            )
            found.update(self._c.execute(query).scalars())
        return found

    def see_orphan(self, storage_id: str, digest: str, now: datetime) -> datetime:
        statement = self._insert(ORPHAN).values(
            storage_id=storage_id, digest=digest, first_seen=now
        )
        self._c.execute(statement.on_conflict_do_nothing())
        query = select(ORPHAN.c.first_seen).where(
            ORPHAN.c.storage_id == storage_id, ORPHAN.c.digest == digest
        )
        first_seen: datetime = self._c.execute(query).scalar_one()
        return first_seen

    def forget_orphans(self, storage_id: str, digests: list[str]) -> None:
        for chunk in _chunks(digests):
            self._c.execute(
                delete(ORPHAN).where(ORPHAN.c.storage_id == storage_id, ORPHAN.c.digest.in_(chunk))
            )


#: Digests one ``IN`` list of the collector's batched statements holds.
_CHUNK = 500


def _chunks(digests: list[str]) -> Iterator[list[str]]:
    """``digests`` in digest order, ``_CHUNK`` at a time (the lock order, see the module)."""
    ordered = sorted(digests)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]
