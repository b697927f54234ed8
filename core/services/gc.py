"""Online garbage collection over the review queues (GitLab's design, see ARCHITECTURE 3).

Consistency guarantees:
- A blob row is deleted only in a transaction that holds its review row's lock and
  found no manifest referencing it; the push path postpones reviews under the same lock
  before it reads what they protect, so a racing push either sees the blob gone (and
  fails cleanly) or keeps it.
- Rows go first: the deciding transaction deletes the blob's rows and leaves a
  *tombstone* review row; its object is deleted afterwards under the tombstone's lock,
  and the tombstone is removed in that transaction. Both work a batch at a time: one
  transaction decides a batch of reviews, another deletes a batch of tombstones' objects
  with one store request per tenant (``BlobStore.delete_blobs``). A crash in between
  leaves only tombstones, finished by the next run (every step is idempotent).
- Fails closed: storage listings and database reads complete before anything is
  deleted; any error aborts the step with nothing deleted by it.
- Upload sessions are never touched (their data is not a blob).
- Given a run id, each batch adds what it did to the run's row in the batch's own
  transaction (``core.services.gc_progress``), so a retried step loses no count.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from core.backup_ports import BackupHolds
from core.control_records import BlobReview
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
        """Decide on due blob reviews: drop the referenced, tombstone the unreferenced.

        One transaction per batch, a few statements per project in it: the batch's
        reviews are locked, then what references them is read and their rows changed.
        """
        report = GcReport()
        with self._metadata.write() as session:
            reviews = session.collector.due_blob_reviews(due, limit, lock=not dry_run)
            for project_id, digests in _by_owner(reviews, lambda r: r.project_id):
                report.add(self._decide_blobs(session, project_id, digests, dry_run))
            if not dry_run:
                self._count(session, run_id, gc_progress.BLOBS, report)
                session.commit()
        return report

    @staticmethod
    def _decide_blobs(
        session: UnitOfWork, project_id: int, digests: list[str], dry_run: bool
    ) -> GcReport:
        report = GcReport(reviewed=len(digests))
        referenced = session.collector.referenced_blobs(project_id, digests)
        unreferenced = [digest for digest in digests if digest not in referenced]
        known = session.collector.blob_sizes(project_id, unreferenced)
        sizes = {digest: known.get(digest, 0) for digest in unreferenced}
        for digest in digests:
            if digest in referenced:
                report.kept += 1
                report.note(kind="blob", digest=digest, action="keep", reason="referenced")
                continue
            report.deleted += 1
            report.bytes_freed += sizes[digest]
            report.note(
                kind="blob",
                digest=digest,
                action="delete",
                reason="no manifest references it",
                size=sizes[digest],
            )
        if not dry_run:
            session.collector.drop_blob_reviews(project_id, sorted(referenced))
            session.collector.delete_blob_rows(project_id, unreferenced)
            session.collector.set_blob_tombstones(project_id, sizes)
        return report

    def finish_tombstones(
        self, limit: int, *, run_id: str | None = None, quarantined: bool = False
    ) -> int:
        """Delete the objects of a batch of tombstoned blobs under their tombstones' locks.

        One transaction per batch: the tombstones are locked (PostgreSQL: ``FOR UPDATE
        SKIP LOCKED``, so a push settling one of them keeps it; SQLite: the write lock),
        their objects deleted with one store request per tenant (``BlobStore.delete_blobs``:
        S3's DeleteObjects takes 1000 keys), and the tombstones dropped. A push waiting on
        one of the rows waits for that batch's delete at most; one that settled a
        tombstone first re-armed its row, which is then no longer taken. An object that
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
        with self._metadata.write() as session:
            tombstones = session.collector.blob_tombstones(
                limit, lock=True, quarantined=quarantined
            )
            if self._held():  # NOTE: a backup began since: its snapshot may need them
                return 0
            report = GcReport()
            for (project_id, storage_id), digests in _by_owner(
                tombstones, lambda t: (t.project_id, t.storage_id)
            ):
                failed = self._delete_objects(storage_id, digests)
                session.collector.quarantine_blob_tombstones(project_id, sorted(failed))
                session.collector.drop_blob_reviews(
                    project_id, [digest for digest in digests if digest not in failed]
                )
                report.reviewed += len(failed)
                report.quarantined += len(failed)
                for digest, why in failed.items():
                    reason = f"cannot delete the object: {why}"
                    report.note(kind="blob", digest=digest, action="quarantine", reason=reason)
            if quarantined:
                _count_repaired(report, tombstones)
            self._count(session, run_id, gc_progress.BLOBS, report)
            session.commit()
        return len(tombstones)

    def _delete_objects(self, storage_id: str, digests: list[str]) -> dict[str, str]:
        """Delete one tenant's objects; those left in place, each with why.

        A request refused as a whole leaves all of them (they are quarantined).
        """
        try:
            failed = self._store.delete_blobs(
                storage_id, [Digest.parse(digest) for digest in digests]
            )
        except Exception as exc:  # noqa: BLE001 - a refused request quarantines its objects
            return dict.fromkeys(digests, f"{type(exc).__name__}: {exc}")
        return {str(digest): reason for digest, reason in failed.items()}

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


_Owner = TypeVar("_Owner")


def _by_owner(
    rows: list[BlobReview], owner: Callable[[BlobReview], _Owner]
) -> list[tuple[_Owner, list[str]]]:
    """The rows' digests grouped by ``owner`` (project, or project and tenant), in order."""
    groups: dict[_Owner, list[str]] = {}
    for row in rows:
        groups.setdefault(owner(row), []).append(row.digest)
    return list(groups.items())


def _count_repaired(report: GcReport, tombstones: list[BlobReview]) -> None:
    """Count the quarantined tombstones whose objects went this time as deleted."""
    failed = {item["digest"] for item in report.items if item["action"] == "quarantine"}
    for tombstone in tombstones:
        if tombstone.digest in failed:
            continue
        report.reviewed += 1
        report.deleted += 1
        report.bytes_freed += tombstone.size
        report.note(
            kind="blob",
            digest=tombstone.digest,
            action="delete",
            reason="quarantined object deleted",
            size=tombstone.size,
        )
