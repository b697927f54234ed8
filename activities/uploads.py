"""Activities about blob uploads: reaping expired sessions and storage leftovers."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.contracts import REAP_EXPIRED_UPLOADS, ReapUploadsInput, ReapUploadsResult
from core.ports import BlobStore
from core.services.uploads import UploadService
from core.settings import Settings
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata


class _UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class UploadActivities:
    """Upload maintenance run by the worker.

    Idempotent: a retried run finds fewer (or no) expired sessions and removes only
    those; removing an already removed session or upload is a no-op.
    """

    def __init__(self, settings: Settings, engines: Engines, store: BlobStore) -> None:
        metadata = SqlMetadata(engines)
        self._store = store
        self._uploads = UploadService(metadata, store, _UtcClock(), settings.limits)

    @activity.defn(name=REAP_EXPIRED_UPLOADS)
    def reap_expired_uploads(self, params: ReapUploadsInput) -> ReapUploadsResult:
        """Remove expired upload sessions (rows and data), then stale storage leftovers."""
        reaped = 0
        for _ in range(1000):
            batch = self._uploads.reap_expired(datetime.now(UTC))
            reaped += batch
            activity.heartbeat(reaped)
            if batch == 0:
                break
        aborted = self._store.reap_incomplete(params.older_than_seconds)
        return ReapUploadsResult(sessions_reaped=reaped, storage_leftovers_aborted=aborted)
