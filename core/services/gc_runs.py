"""Requests and results of GC runs, as the management API sees them.

A request writes the run's row and a ``gc.requested`` outbox event in one transaction;
the outbox dispatcher starts the workflow, so requesting a run never waits on Temporal
and a request made while Temporal is away runs once it is back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from core import events
from core.control_records import GcRunRecord
from core.errors import NotFoundError
from core.paging import window
from core.ports import Metadata
from core.trace_context import with_trace

#: How a run history is ordered, newest first: creation time (UTC), then id.
RunKey = tuple[datetime, str]
#: The newest runs of one kind (and project) that a history pages through.
HISTORY_MAX = 10_000


def run_key(run: GcRunRecord) -> RunKey:
    """The run's place in a history (a naive ``created_at`` is read as UTC)."""
    created = run.created_at
    return (created if created.tzinfo else created.replace(tzinfo=UTC)), run.id


class GcRunService:
    """Request GC runs and read their state and report."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def request(
        self, *, dry_run: bool, delete_untagged: bool, review_delay_seconds: int | None
    ) -> GcRunRecord:
        """Queue a run; its id is also its workflow id."""
        run = GcRunRecord(
            id=f"gc-{uuid.uuid4().hex}",
            state="queued",
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            review_delay_seconds=review_delay_seconds,
            report=None,
            created_at=datetime.now(UTC),
            finished_at=None,
        )
        options = {
            "run_id": run.id,
            "dry_run": dry_run,
            "delete_untagged": delete_untagged,
            "review_delay_seconds": review_delay_seconds,
        }
        with self._metadata.write() as session:
            session.runs.add(run)
            session.outbox.add(events.GC_REQUESTED, data=json.dumps(with_trace(options)))
            session.commit()
        return run

    def get(self, run_id: str) -> GcRunRecord:
        with self._metadata.read() as session:
            run = session.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"GC run {run_id!r} not found")
        return run

    def request_retention(self, project: str, *, dry_run: bool) -> GcRunRecord:
        """Queue a retention run of ``project``; its id is also its workflow id."""
        with self._metadata.read() as session:
            if session.projects.get(project) is None:
                raise NotFoundError(f"project {project!r} not found")
        run = GcRunRecord(
            id=f"retention-{uuid.uuid4().hex}",
            state="queued",
            dry_run=dry_run,
            delete_untagged=False,
            review_delay_seconds=None,
            report=None,
            created_at=datetime.now(UTC),
            finished_at=None,
            kind="retention",
            project=project,
        )
        options = {"run_id": run.id, "project": project, "dry_run": dry_run}
        with self._metadata.write() as session:
            session.runs.add(run)
            session.outbox.add(events.RETENTION_REQUESTED, data=json.dumps(with_trace(options)))
            session.commit()
        return run

    def history(self, kind: str, project: str | None, limit: int) -> list[GcRunRecord]:
        """The newest runs, newest first (the run history of the management API)."""
        with self._metadata.read() as session:
            return session.runs.latest(kind, project, limit)

    def page(
        self, kind: str, project: str | None, before: RunKey | None, limit: int
    ) -> list[GcRunRecord]:
        """At most ``limit`` runs older than ``before``, newest first.

        Keyset on ``(created_at, id)`` (:func:`run_key`) over the newest ``HISTORY_MAX``
        runs of ``kind`` (and ``project``).
        """
        runs = self.history(kind, project, HISTORY_MAX)
        return window(runs, run_key, before, limit, descending=True)
