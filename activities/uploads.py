"""Activities about blob uploads: reaping expired sessions and storage leftovers."""

from __future__ import annotations

from temporalio import activity

from activities.contracts import REAP_EXPIRED_UPLOADS, ReapUploadsInput, ReapUploadsResult
from core.ports import BlobStore, Clock
from core.services.uploads import UploadService


class UploadActivities:
    """Upload maintenance run by the worker.

    Idempotent: a retried run finds fewer (or no) expired sessions and removes only
    those; removing an already removed session or upload is a no-op.

    Args:
        uploads: The upload service (sessions and their data).
        store: The blob store (its own leftovers of unfinished uploads).
        clock: The process's clock.
    """

    def __init__(self, uploads: UploadService, store: BlobStore, clock: Clock) -> None:
        self._store = store
        self._uploads = uploads
        self._clock = clock

    @activity.defn(name=REAP_EXPIRED_UPLOADS)
    def reap_expired_uploads(self, params: ReapUploadsInput) -> ReapUploadsResult:
        """Remove expired upload sessions (rows and data), then stale storage leftovers."""
        reaped = 0
        for _ in range(1000):
            batch = self._uploads.reap_expired(self._clock.now())
            reaped += batch
            activity.heartbeat(reaped)
            if batch == 0:
                break
        aborted = self._store.reap_incomplete(params.older_than_seconds)
        return ReapUploadsResult(sessions_reaped=reaped, storage_leftovers_aborted=aborted)
