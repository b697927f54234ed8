"""Composition root: builds the concrete collaborators a process needs from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from activities.events import EventActivities
from activities.gc import GcActivities
from activities.keys import KeyActivities
from activities.quota import QuotaActivities
from activities.retention import RetentionActivities
from activities.uploads import UploadActivities
from storage.blobs import build_blob_store
from storage.db.engine import create_db_engine

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to real storage."""
    engine = create_db_engine(settings)
    store = build_blob_store(settings)
    uploads = UploadActivities(settings, engine, store)
    gc = GcActivities(settings, engine, store)
    keys = KeyActivities(engine)
    events = EventActivities()
    return [
        uploads.reap_expired_uploads,
        gc.gc_record_run,
        gc.gc_collect_manifests,
        gc.gc_collect_blobs,
        gc.gc_sweep_orphans,
        events.deliver_events_log,
        events.handle_event,
        RetentionActivities(settings, engine).run_retention,
        QuotaActivities(settings, engine, store).reconcile_quotas,
        keys.rotate_signing_key,
        keys.retire_signing_keys,
    ]
