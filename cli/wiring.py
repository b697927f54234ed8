"""Composition root: builds the concrete collaborators a process needs from settings."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from activities.events import EventActivities
from activities.gc import GcActivities
from activities.keys import KeyActivities
from activities.quota import QuotaActivities
from activities.retention import RetentionActivities
from activities.uploads import UploadActivities
from activities.webhooks import WebhookActivities
from adapters.master_key import secret_box
from adapters.webhook_http import webhook_http
from storage.blobs import build_blob_store
from storage.db.engine import create_engines

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.settings import Settings


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to real storage.

    One set of engines for all of them, built like the API's: on SQLite every writer
    takes the process's write lock (``storage.db.engine.Engines.writing``).
    """
    engines = create_engines(settings)
    store = build_blob_store(settings)
    uploads = UploadActivities(settings, engines, store)
    gc = GcActivities(settings, engines, store)
    keys = KeyActivities(engines)
    events = EventActivities()
    webhooks = WebhookActivities(
        settings, engines, partial(secret_box, settings), partial(webhook_http, settings)
    )
    return [
        uploads.reap_expired_uploads,
        gc.gc_record_run,
        gc.gc_collect_manifests,
        gc.gc_collect_blobs,
        gc.gc_sweep_orphans,
        events.deliver_events_log,
        events.handle_event,
        RetentionActivities(settings, engines).run_retention,
        QuotaActivities(settings, engines, store).reconcile_quotas,
        keys.rotate_signing_key,
        keys.retire_signing_keys,
        webhooks.deliver_events_webhook,
        webhooks.send_webhook_deliveries,
    ]
