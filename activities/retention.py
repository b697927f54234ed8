"""The retention activity: records its run, applies the plan, records the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from activities.contracts import RUN_RETENTION, RetentionInput
from core.control_records import GcRunRecord
from core.services.changes import ChangeRecorder
from core.services.manifests import ManifestService
from core.services.retention import RETENTION, RetentionService
from core.settings import Settings
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata


class RetentionActivities:
    """Idempotent: a retried run plans again from the rows as they are now."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._metadata = SqlMetadata(Engines(read=engine, write=engine))
        changes = ChangeRecorder(
            settings.control.gc_review_delay_seconds, settings.control.quota_warning_ratio
        )
        self._retention = RetentionService(self._metadata, ManifestService(self._metadata, changes))

    def _record(self, params: RetentionInput, state: str, report: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        run = GcRunRecord(
            params.run_id, state, params.dry_run, False, None, None, now, None,
            kind="retention", project=params.project or None,
        )  # fmt: skip
        with self._metadata.write() as session:
            session.add_gc_run(run)
            session.finish_gc_run(params.run_id, state, json.dumps(report), now)
            session.commit()

    @activity.defn(name=RUN_RETENTION)
    def run_retention(self, params: RetentionInput) -> dict[str, Any]:
        """Apply retention to the project (or all with a policy); return the report."""
        self._record(params, "running", {})
        if params.project:
            projects = [params.project]
        else:
            with self._metadata.read() as session:
                projects = session.policy_projects(RETENTION)
        report: dict[str, Any] = {"retained": 0, "deleted": 0, "items": []}
        for project in projects:
            result = self._retention.run(project, datetime.now(UTC), params.dry_run)
            report["retained"] += result.retained
            report["deleted"] += result.deleted
            report["items"].extend(result.items)
            activity.heartbeat(project)
        self._record(params, "completed", report)
        return {"retained": report["retained"], "deleted": report["deleted"]}
