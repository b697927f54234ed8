"""The quota reconciliation activity (read-mostly; repeating it is harmless)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from activities.contracts import RECONCILE_QUOTAS, ReconcileInput
from core.ports import BlobStore
from core.services.reconcile import QuotaReconciler
from core.settings import Settings
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata


class QuotaActivities:
    def __init__(self, settings: Settings, engine: Engine, store: BlobStore) -> None:
        metadata = SqlMetadata(Engines(read=engine, write=engine))
        self._reconciler = QuotaReconciler(metadata, store, settings.control.quota_warning_ratio)

    @activity.defn(name=RECONCILE_QUOTAS)
    def reconcile_quotas(self, params: ReconcileInput) -> list[dict[str, Any]]:
        """Usage, warnings and row/storage drift of every project with a quota."""
        del params
        return self._reconciler.run()
