"""The retention activity: records its run, applies the plan, records the report."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.contracts import RUN_RETENTION, RetentionInput
from core.control_records import GcRunRecord
from core.ports import Clock, Metadata
from core.services.retention import RETENTION, RetentionReport, RetentionService
from core.services.retention_runs import complete_run
from core.services.run_progress import FINISHED, open_run, report_of


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"retained": int(report.get("retained", 0)), "deleted": int(report.get("deleted", 0))}


class RetentionActivities:
    """Idempotent: a retried run plans again from the rows as they are now.

    Deletions are recorded in the run's row as they commit, so the report of a retried
    run still lists what the killed attempt deleted; a retry of a completed run returns
    the recorded report.

    Args:
        retention: The retention service (built with the change recorder, for recorded runs).
        metadata: Where the run's row lives.
        clock: The process's clock.
    """

    def __init__(self, retention: RetentionService, metadata: Metadata, clock: Clock) -> None:
        self._metadata = metadata
        self._retention = retention
        self._clock = clock

    def _open(self, params: RetentionInput) -> GcRunRecord:
        now = self._clock.now()
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
                self._clock.now(),
                params.dry_run,
                run_id=run_id,
                heartbeat=activity.heartbeat,
            )
            for item in result.items:
                report.add(item)
            activity.heartbeat(project)
        with self._metadata.write() as session:
            final = complete_run(session, params.run_id, report.items, self._clock.now())
            session.commit()
        return _summary(final)
