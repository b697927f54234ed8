"""The quota reconciliation activity (read-mostly; repeating it writes nothing twice)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.contracts import RECONCILE_QUOTAS, ReconcileInput
from core.services.reconcile import QuotaReconciler


class QuotaActivities:
    """Quota reconciliation over the reconciler the composition root built."""

    def __init__(self, reconciler: QuotaReconciler) -> None:
        self._reconciler = reconciler

    @activity.defn(name=RECONCILE_QUOTAS)
    def reconcile_quotas(self, params: ReconcileInput) -> list[dict[str, Any]]:
        """Usage, warnings and row/storage drift of every project with a quota.

        Heartbeats per project. Each project's ``quota.warning`` is keyed on the run (its
        id, else the workflow id, and the workflow execution), so a retried attempt of
        the same run writes none a second time.
        """
        info = activity.info()
        key = f"{params.run_id or info.workflow_id}:{info.workflow_run_id}"
        return self._reconciler.run(key, activity.heartbeat)
