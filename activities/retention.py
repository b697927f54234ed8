"""The retention activity: records its run, applies the plan, records the report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.contracts import RUN_RETENTION, RetentionInput
from core.control_records import GcRunRecord
from core.services.changes import ChangeRecorder
from core.services.manifests import ManifestService
from core.services.retention import RETENTION, RetentionReport, RetentionService
from core.services.retention_runs import complete_run
from core.services.run_progress import FINISHED, open_run, report_of
from core.settings import Settings
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"retained": int(report.get("retained", 0)), "deleted": int(report.get("deleted", 0))}


class RetentionActivities:
    """Idempotent: a retried run plans again from the rows as they are now.

    Deletions are recorded in the run's row as they commit, so the report of a retried
    run still lists what the killed attempt deleted; a retry of a completed run returns
    the recorded report.
    """

    def __init__(self, settings: Settings, engines: Engines) -> None:
        self._metadata = SqlMetadata(engines)
        changes = ChangeRecorder(
            settings.control.gc_review_delay_seconds, settings.control.quota_warning_ratio
        )
        self._retention = RetentionService(
            self._metadata, ManifestService(self._metadata, changes), changes
        )

    def _open(self, params: RetentionInput) -> GcRunRecord:
        now = datetime.now(UTC)
        run = GcRunRecord(
            params.run_id, "running", params.dry_run, False, None, None, now, None,
            kind="retention", project=params.project or None,
        )  # fmt: skip
        with self._metadata.write() as session:
            opened = open_run(session, run, now)
            session.commit()
        return opened

    @activity.defn(name=RUN_RETENTION)
    def run_retention(self, params: RetentionInput) -> dict[str, Any]:
        """Apply retention to the project (or all with a policy); return the counts."""
        opened = self._open(params)
        if opened.state in FINISHED:
            return _summary(report_of(opened))
        if params.project:
            projects = [params.project]
        else:
            with self._metadata.read() as session:
                projects = session.policies.policy_projects(RETENTION)
        report = RetentionReport()
        run_id = None if params.dry_run else params.run_id
        for project in projects:
            result = self._retention.run(
                project,
                datetime.now(UTC),
                params.dry_run,
                run_id=run_id,
                heartbeat=activity.heartbeat,
            )
            for item in result.items:
                report.add(item)
            activity.heartbeat(project)
        with self._metadata.write() as session:
            final = complete_run(session, params.run_id, report.items, datetime.now(UTC))
            session.commit()
        return _summary(final)
