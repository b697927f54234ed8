"""Online garbage collection over the review queues (GitLab's design, see ARCHITECTURE 3).

Consistency guarantees:
- A blob row is deleted only in a transaction that holds its review row's lock and
  found no manifest referencing it; the push path postpones reviews under the same lock
  before it reads what they protect, so a racing push either sees the blob gone (and
  fails cleanly) or keeps it.
- Rows go first: the deciding transaction deletes the blob's rows and leaves a
  *tombstone* review row; its object is deleted afterwards under the tombstone's lock,
  and the tombstone is removed in that transaction. A crash in between leaves only a
  tombstone, finished by the next run (every step is idempotent).
- Fails closed: storage listings and database reads complete before anything is
  deleted; any error aborts the step with nothing deleted by it.
- Upload sessions are never touched (their data is not a blob).
- Given a run id, each batch adds what it did to the run's row in the batch's own
  transaction (``core.services.gc_progress``), so a retried step loses no count.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from core.backup_ports import BackupHolds
from core.control_records import QUARANTINED, BlobReview
from core.digests import Digest
from core.ports import BlobStore, Metadata, UnitOfWork
from core.records import RepositoryRecord
from core.services import gc_progress
from core.services.changes import ChangeRecorder
from core.services.gc_report import GcReport

#: Objects listed between two heartbeats of the orphan sweep.
HEARTBEAT_EVERY = 1000


class GarbageCollector:
    """The steps of a GC run; each takes at most one batch and is safe to repeat."""

    def __init__(
        self,
        metadata: Metadata,
        store: BlobStore,
        changes: ChangeRecorder,
        holds: BackupHolds | None = None,
    ) -> None:
        self._metadata = metadata
        self._store = store
        self._changes = changes
        #: Holds of running backups: while one is current, no object is deleted.
        self._holds = holds

    def _held(self) -> bool:
        return self._holds is not None and self._holds.held()

    def collect_manifests(
        self, due: datetime, limit: int, dry_run: bool, *, run_id: str | None = None
    ) -> GcReport:
        """Delete due, unreferenced manifests (untagged, not in an index, no live subject)."""
        report = GcReport()
        with self._metadata.write() as session:
            for review in session.collector.due_manifest_reviews(due, limit, lock=not dry_run):
                report.reviewed += 1
                kept_by = session.collector.manifest_kept_by(review.repository_id, review.digest)
                if kept_by is not None or review.project_id is None:
                    report.kept += 1
                    report.note(
                        kind="manifest", digest=review.digest, action="keep", reason=kept_by
                    )
                    if not dry_run:
                        session.collector.drop_manifest_review(review.repository_id, review.digest)
                    continue
                report.deleted += 1
                report.note(
                    kind="manifest", digest=review.digest, action="delete", reason="untagged"
                )
                if not dry_run:
                    repository = RepositoryRecord(
                        review.repository_id,
                        review.project_id,
                        review.repository or "",
                        review.storage_id or "",
                    )
                    self._delete_manifest(session, repository, review.digest)
            if not dry_run:
                self._count(session, run_id, gc_progress.MANIFESTS, report)
                session.commit()
        return report

    def _delete_manifest(
        self, session: UnitOfWork, repository: RepositoryRecord, digest: str
    ) -> None:
        references = session.manifests.references(repository.id, digest)
        session.manifests.delete(repository.id, digest)
        session.collector.drop_manifest_review(repository.id, digest)
        self._changes.manifest_deleted(session, repository, digest, references, by="gc")

    def collect_blobs(
        self, due: datetime, limit: int, dry_run: bool, *, run_id: str | None = None
    ) -> GcReport:
        """Decide on due blob reviews: drop the referenced, tombstone the unreferenced."""
        report = GcReport()
        with self._metadata.write() as session:
            for review in session.collector.due_blob_reviews(due, limit, lock=not dry_run):
                report.reviewed += 1
                if session.collector.blob_referenced(review.project_id, review.digest):
                    report.kept += 1
                    report.note(
                        kind="blob", digest=review.digest, action="keep", reason="referenced"
                    )
                    if not dry_run:
                        session.collector.drop_blob_review(review.project_id, review.digest)
                    continue
                size = session.collector.blob_size(review.project_id, review.digest) or 0
                report.deleted += 1
                report.bytes_freed += size
                report.note(
                    kind="blob",
                    digest=review.digest,
                    action="delete",
                    reason="no manifest references it",
                    size=size,
                )
                if not dry_run:
                    session.collector.delete_blob_rows(review.project_id, review.digest)
                    session.collector.set_blob_tombstone(review.project_id, review.digest, size)
            if not dry_run:
                self._count(session, run_id, gc_progress.BLOBS, report)
                session.commit()
        return report

    def finish_tombstones(
        self, limit: int, *, run_id: str | None = None, quarantined: bool = False
    ) -> int:
        """Delete the objects of tombstoned blobs, each under its tombstone's lock.

        One short transaction per object, so a push waiting on the same row (or, on
        SQLite, on the write lock) waits for one storage delete at most. An object that
        cannot be deleted (a directory where its file was, a refused delete) is
        *quarantined*: its tombstone stays, marked, and the run's report lists it with
        the reason; the run goes on. ``quarantined`` takes the marked tombstones instead
        (each is tried once per call: the caller's retry of earlier failures); one
        deleted now counts as deleted by ``run_id``.

        While a backup holds GC (``core.backup_ports.BackupHolds``) nothing is taken.

        Returns:
            How many tombstones were taken.
        """
        if self._held():
            return 0
        with self._metadata.read() as session:
            tombstones = session.collector.blob_tombstones(
                limit, lock=False, quarantined=quarantined
            )
        for taken, tombstone in enumerate(tombstones):
            with self._metadata.write() as session:
                if self._held():  # NOTE: a backup began since: its snapshot may need the rest
                    return taken
                if session.reviews.blob_tombstoned(tombstone.project_id, tombstone.digest):
                    report = self._finish_tombstone(session, tombstone)
                    self._count(session, run_id, gc_progress.BLOBS, report)
                session.commit()
        return len(tombstones)

    def _finish_tombstone(self, session: UnitOfWork, tombstone: BlobReview) -> GcReport:
        """Delete one tombstone's object and the tombstone, or quarantine it."""
        report = GcReport()
        try:
            self._store.delete_blob(tombstone.storage_id, Digest.parse(tombstone.digest))
        except Exception as exc:  # noqa: BLE001 - any refusal quarantines this one object
            session.collector.quarantine_blob_tombstone(tombstone.project_id, tombstone.digest)
            report.reviewed, report.quarantined = 1, 1
            reason = f"cannot delete the object: {type(exc).__name__}: {exc}"
            report.note(kind="blob", digest=tombstone.digest, action="quarantine", reason=reason)
            return report
        session.collector.drop_blob_review(tombstone.project_id, tombstone.digest)
        if tombstone.event == QUARANTINED:
            report.reviewed, report.deleted, report.bytes_freed = 1, 1, tombstone.size
            report.note(
                kind="blob",
                digest=tombstone.digest,
                action="delete",
                reason="quarantined object deleted",
                size=tombstone.size,
            )
        return report

    def sweep_orphans(
        self,
        now: datetime,
        grace: timedelta,
        dry_run: bool,
        *,
        run_id: str | None = None,
        heartbeat: Callable[[], None] = lambda: None,
    ) -> GcReport:
        """Delete objects that have had no blob row since at least ``grace`` ago.

        Every tenant is listed before anything is deleted; a listing error raises.
        While a backup holds GC, orphans are only counted as kept.
        ``heartbeat`` is called while listing (every ``HEARTBEAT_EVERY`` objects) and
        after each tenant.
        """
        with self._metadata.read() as session:
            tenants = session.collector.tenants()
        listed = {storage: self._list(storage, heartbeat) for _, storage in tenants}
        report = GcReport()
        for project_id, storage_id in tenants:
            report.add(
                self._sweep_tenant(
                    project_id,
                    storage_id,
                    listed[storage_id],
                    now=now,
                    grace=grace,
                    dry_run=dry_run,
                    run_id=run_id,
                    heartbeat=heartbeat,
                )
            )
            heartbeat()
        return report

    def _list(self, storage_id: str, heartbeat: Callable[[], None]) -> set[str]:
        objects: set[str] = set()
        for digest in self._store.list_blobs(storage_id):
            objects.add(str(digest))
            if len(objects) % HEARTBEAT_EVERY == 0:
                heartbeat()
        return objects

    def _sweep_tenant(
        self,
        project_id: int,
        storage_id: str,
        objects: set[str],
        *,
        now: datetime,
        grace: timedelta,
        dry_run: bool,
        run_id: str | None,
        heartbeat: Callable[[], None],
    ) -> GcReport:
        report = GcReport()
        with self._metadata.write() as session:
            known = session.collector.project_digests(
                project_id
            ) | session.collector.tombstoned_digests(storage_id)
            orphans = sorted(objects - known)
            report.reviewed += len(orphans)
            if not dry_run:
                session.collector.forget_orphans(storage_id, sorted(objects & known))
            for digest in orphans:
                if dry_run:
                    report.note(kind="object", digest=digest, action="delete", reason="no row")
                    report.deleted += 1
                    continue
                first_seen = session.collector.see_orphan(storage_id, digest, now)
                if (
                    first_seen > now - grace
                    or self._armed(session, project_id, digest)
                    or self._held()
                ):
                    report.kept += 1
                    continue
                size = self._store.stat_blob(storage_id, Digest.parse(digest)) or 0
                self._store.delete_blob(storage_id, Digest.parse(digest))
                session.collector.forget_orphans(storage_id, [digest])
                report.deleted += 1
                report.bytes_freed += size
                report.note(kind="object", digest=digest, action="delete", reason="no row")
                heartbeat()
            if not dry_run:
                self._count(session, run_id, gc_progress.ORPHANS, report, tenant=storage_id)
            session.commit()
        return report

    @staticmethod
    def _count(
        session: UnitOfWork,
        run_id: str | None,
        step: str,
        report: GcReport,
        tenant: str | None = None,
    ) -> None:
        """Add a batch to the run's progress, in the batch's transaction."""
        if run_id is not None and (report.reviewed or tenant is not None):
            gc_progress.add_step(session, run_id, step, report, tenant=tenant)

    @staticmethod
    def _armed(session: UnitOfWork, project_id: int, digest: str) -> bool:
        """Whether a row appeared or a push claimed the digest (its review row exists)."""
        if session.blobs.in_project(project_id, digest) is not None:
            return True
        return session.reviews.blob_review_state(project_id, digest) is not None
