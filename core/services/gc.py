"""Online garbage collection over the review queues (GitLab's design, see ARCHITECTURE 3).

Consistency guarantees:
- A blob row is deleted only in a transaction that holds its review row's lock and
  then found no manifest referencing it (read in a later statement than the lock); the
  push path locks the same rows (shared, or exclusive to postpone the review) before it
  reads what they protect, so a racing push either sees the blob gone (and fails
  cleanly) or the collector passes the held row by and later finds it referenced.
- Rows go first: the deciding transaction deletes the blob's rows and leaves a
  *tombstone* review row; its object is deleted afterwards under the tombstone's lock,
  and the tombstone is removed in that transaction. Both work a batch at a time: one
  transaction decides a batch of reviews, another deletes a batch of tombstones' objects
  with one store request per tenant (``BlobStore.delete_blobs``). A crash in between
  leaves only tombstones, finished by the next run (every step is idempotent).
- Fails closed: the listings and database reads a transaction decides on complete
  before it deletes anything; an error aborts that transaction with nothing deleted
  by it (the orphan sweep decides a chunk of a tenant's listing at a time, see
  ``GarbageCollector.sweep_orphans``).
- Upload sessions are never touched (their data is not a blob).
- Given a run id, each batch adds what it did to the run's row in the batch's own
  transaction (``core.services.gc_progress``), so a retried step loses no count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import TypeVar

from core.backup_ports import BackupHolds
from core.control_records import BlobReview
from core.digests import Digest
from core.ports import BlobStore, Metadata, UnitOfWork
from core.records import RepositoryRecord
from core.services import gc_progress
from core.services.changes import ChangeRecorder
from core.services.gc_report import GcReport

#: Objects of a tenant's listing one transaction of the orphan sweep decides.
SWEEP_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class _OrphanSweep:
    """One tenant's orphan sweep: what every chunk of it is decided with."""

    project_id: int
    storage_id: str
    now: datetime
    grace: timedelta
    dry_run: bool
    run_id: str | None


class GarbageCollector:
    """The steps of a GC run; each takes at most one batch and is safe to repeat."""

    def __init__(
        self,
        metadata: Metadata,
        store: BlobStore,
        changes: ChangeRecorder,
        holds: BackupHolds | None = None,
        *,
        sweep_chunk: int = SWEEP_CHUNK,
    ) -> None:
        self._metadata = metadata
        self._store = store
        self._changes = changes
        #: Holds of running backups: while one is current, no object is deleted.
        self._holds = holds
        #: Objects one transaction of the orphan sweep decides (its memory bound).
        self.sweep_chunk = sweep_chunk

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

        Each tenant's listing is walked ``sweep_chunk`` objects at a time, and each chunk
        is decided in one short write transaction: the database is asked about that
        chunk's digests only (which have a blob row, which are tombstoned), sightings are
        recorded, and the chunk's deletable orphans are deleted with one store request
        (``BlobStore.delete_blobs``). The worker holds one chunk, whatever the number of
        objects, and a push waits for one chunk's transaction at most.

        Consistency guarantees:
        - An object is deleted only when it has had no blob row and no tombstone since
          its first sighting at least ``grace`` ago, no push has re-armed it (a row or a
          review of its digest appeared) and no backup holds GC: all checked in the
          transaction that deletes it. Each decision is per object, so what a chunk
          decided stays right whatever the chunks after it find.
        - A listing error raises and stops the sweep: the chunks already swept stay
          swept (their deletions committed with their sightings forgotten); the rest is
          left for the next sweep.
        - An object the store refuses to delete is kept (its sighting stays, so the next
          sweep tries again) and listed with the store's reason.
        - A dry run changes nothing and reports every object without a row as deleted.
        - Given a run id, each chunk adds what it did to the run's progress in its own
          transaction; the first chunk of a tenant replaces the tenant's kept count of
          an earlier attempt (``gc_progress.add_step``).

        ``heartbeat`` is called after each chunk.
        """
        with self._metadata.read() as session:
            tenants = session.collector.tenants()
        report = GcReport()
        for project_id, storage_id in tenants:
            sweep = _OrphanSweep(project_id, storage_id, now, grace, dry_run, run_id)
            listing = self._store.list_blobs(storage_id)
            first = True
            while (chunk := [str(digest) for digest in islice(listing, self.sweep_chunk)]) or first:
                report.add(self._sweep_chunk(sweep, sorted(chunk), first=first))
                first = False
                heartbeat()
        return report

    def _sweep_chunk(self, sweep: _OrphanSweep, chunk: list[str], *, first: bool) -> GcReport:
        """Decide one chunk of a tenant's listing in one transaction (see ``sweep_orphans``)."""
        report = GcReport()
        with self._metadata.write() as session:
            known = set(session.collector.blob_sizes(sweep.project_id, chunk))
            known |= session.collector.tombstoned_blobs(sweep.storage_id, chunk)
            orphans = [digest for digest in chunk if digest not in known]
            report.reviewed += len(orphans)
            if sweep.dry_run:
                for digest in orphans:
                    report.note(kind="object", digest=digest, action="delete", reason="no row")
                    report.deleted += 1
                return report
            session.collector.forget_orphans(sweep.storage_id, sorted(known))
            due = [digest for digest in orphans if self._orphan_due(session, sweep, digest)]
            if self._held():  # NOTE: a backup holds GC: its snapshot may need them
                due = []
            report.kept += len(orphans) - len(due)
            sizes = {
                digest: self._store.stat_blob(sweep.storage_id, Digest.parse(digest)) or 0
                for digest in due
            }
            failed = self._delete_objects(sweep.storage_id, due) if due else {}
            session.collector.forget_orphans(
                sweep.storage_id, [digest for digest in due if digest not in failed]
            )
            for digest in due:
                if digest in failed:
                    report.kept += 1
                    reason = f"cannot delete the object: {failed[digest]}"
                    report.note(kind="object", digest=digest, action="keep", reason=reason)
                    continue
                report.deleted += 1
                report.bytes_freed += sizes[digest]
                report.note(kind="object", digest=digest, action="delete", reason="no row")
            self._count(
                session,
                sweep.run_id,
                gc_progress.ORPHANS,
                report,
                tenant=sweep.storage_id,
                first=first,
            )
            session.commit()
        return report

    def _orphan_due(self, session: UnitOfWork, sweep: _OrphanSweep, digest: str) -> bool:
        """Record the sighting of an object without a row; whether it may go now."""
        first_seen = session.collector.see_orphan(sweep.storage_id, digest, sweep.now)
        if first_seen > sweep.now - sweep.grace:
            return False
        return not self._armed(session, sweep.project_id, digest)

    @staticmethod
    def _count(
        session: UnitOfWork,
        run_id: str | None,
        step: str,
        report: GcReport,
        tenant: str | None = None,
        first: bool = False,
    ) -> None:
        """Add a batch to the run's progress, in the batch's transaction.

        ``tenant``: a chunk of that tenant's orphan sweep, ``first`` its first chunk.
        """
        if run_id is not None and (report.reviewed or first):
            gc_progress.add_step(session, run_id, step, report, tenant=tenant, first=first)

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
