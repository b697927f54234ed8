"""What the data plane records beside each change, in the change's own transaction.

Every state change writes an outbox event, and every change that may leave a blob or a
manifest without references puts it into a GC review queue with a review-after time.
A push holds the review rows of the blobs and manifests it is about to reference (a
shared lock until its commit), so a collector working on the same row either finished
before (the push then sees the row gone and fails cleanly) or passes the row by and, on
its next look, finds the push's references. A manifest pushed by digest alone stays
unreferenced, so its pending review is postponed instead (an exclusive lock).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core import events
from core.ports import Clock, UnitOfWork
from core.records import PushTarget, RepositoryRecord
from core.services.quota import QuotaExceededError, record_exceeded


class ChangeRecorder:
    """Writes outbox events and review-queue rows through a metadata session.

    Args:
        review_delay_seconds: How long after a change a possibly unreferenced blob or
            manifest is reviewed by GC (``ControlSettings.gc_review_delay_seconds``).
        quota_warning_ratio: Fraction of a quota at which a push writes a
            ``quota.warning`` event (``ControlSettings.quota_warning_ratio``).
        clock: The process's clock (review-after times are read from it).
    """

    def __init__(self, review_delay_seconds: int, quota_warning_ratio: float, clock: Clock) -> None:
        self._delay = timedelta(seconds=review_delay_seconds)
        #: Fraction of a quota at which a push writes a ``quota.warning`` event.
        self.quota_warning_ratio = quota_warning_ratio
        self._clock = clock

    def review_after(self) -> datetime:
        return self._clock.now() + self._delay

    def hold_references(
        self,
        session: UnitOfWork,
        repository: RepositoryRecord,
        blobs: list[str],
        manifests: list[str],
    ) -> None:
        """Keep GC off what this transaction is about to reference (shared row locks).

        Call before reading what the rows protect. The blob rows are locked before the
        manifest rows, each in digest order.
        """
        session.reviews.hold_reviews(
            repository.project_id, sorted(blobs), repository.id, sorted(manifests)
        )

    def postpone_review(
        self, session: UnitOfWork, repository: RepositoryRecord, digest: str
    ) -> None:
        """Postpone a pending review of a manifest that stays unreferenced (takes its lock).

        A manifest pushed by digest alone gets the full review delay to be referenced
        (by a tag or an index) before GC looks at it again.
        """
        session.reviews.touch_manifest_reviews(repository.id, [digest], self.review_after())

    def blob_may_be_unreferenced(
        self, session: UnitOfWork, repository: RepositoryRecord, digest: str, event: str
    ) -> None:
        session.reviews.enqueue_blob_review(
            repository.project_id, repository.storage_id, digest, event, self.review_after()
        )

    def quota_exceeded(
        self,
        session: UnitOfWork,
        repository: RepositoryRecord | PushTarget,
        denied: QuotaExceededError,
    ) -> None:
        """Write the ``quota.exceeded`` event of a refused push (``quota.record_exceeded``)."""
        record_exceeded(session, repository, denied, self._clock.now())

    def manifest_may_be_unreferenced(
        self, session: UnitOfWork, repository: RepositoryRecord, digest: str, event: str
    ) -> None:
        session.reviews.enqueue_manifest_review(repository.id, digest, event, self.review_after())

    def manifest_deleted(
        self,
        session: UnitOfWork,
        repository: RepositoryRecord,
        digest: str,
        references: tuple[list[str], list[str]],
        by: str = "api",
    ) -> None:
        """Queue what the deleted manifest referenced, and its referrers; write the event.

        Its referrers (signatures, SBOMs, ...) lost their subject: GC collects them once due.
        The review rows are written (and so locked) in digest order, blobs then manifests,
        as every writer of several review rows does, so concurrent deletions sharing blobs
        cannot deadlock on them.
        """
        blobs, children = references
        for blob in sorted(blobs):
            self.blob_may_be_unreferenced(session, repository, blob, events.MANIFEST_DELETE)
        manifests = [(child, events.MANIFEST_LIST_DELETE) for child in children] + [
            (referrer.digest, events.MANIFEST_DELETE)
            for referrer in session.manifests.referrers(repository.id, digest, None)
        ]
        # NOTE: stable: a child that is also a referrer is queued as a child, then re-armed.
        for manifest, event in sorted(manifests, key=lambda queued: queued[0]):
            self.manifest_may_be_unreferenced(session, repository, manifest, event)
        self.event(session, events.MANIFEST_DELETED, repository, digest=digest, data=by)

    @staticmethod
    def event(
        session: UnitOfWork,
        kind: str,
        repository: RepositoryRecord,
        *,
        digest: str | None = None,
        tag: str | None = None,
        data: str | None = None,
    ) -> None:
        session.outbox.add(
            kind,
            project_id=repository.project_id,
            repository=repository.name,
            digest=digest,
            tag=tag,
            data=data,
        )
