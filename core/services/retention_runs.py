"""Progress and report of a retention run, kept in its row (``core.services.run_progress``).

A retried run plans again from the rows as they are now, so it never deletes what was
re-tagged or re-pushed since the attempt that crashed; what that attempt deleted is no
longer in the plan, and is known only from the run's row. Each batch of deletions adds
its entries to the row in the deletions' own transaction, and the final report is this
attempt's decisions plus the deletions recorded before (one entry per repository and
digest, this attempt's decision first).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core import events
from core.control_records import GcRunRecord
from core.ports import UnitOfWork
from core.services.run_progress import FINISHED, locked_progress, report_of, save_progress


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return str(item.get("repository")), str(item.get("digest"))


def merged(earlier: list[dict[str, Any]], items: list[dict[str, Any]]) -> dict[str, Any]:
    """A report of ``items`` plus the deletions of ``earlier`` that ``items`` do not list."""
    listed = {_key(item) for item in items}
    recorded = [
        item for item in earlier if item.get("action") == "delete" and _key(item) not in listed
    ]
    every = [*items, *recorded]
    deleted = sum(1 for item in every if item.get("action") == "delete")
    return {"retained": len(every) - deleted, "deleted": deleted, "items": every}


def record_deletions(session: UnitOfWork, run_id: str, items: list[dict[str, Any]]) -> None:
    """Add deleted entries to the running run's report (in the deletions' transaction)."""
    if not items:
        return
    progress = locked_progress(session, run_id)
    if progress is not None:
        save_progress(session, run_id, merged(progress.get("items", []), items))


def complete_run(
    session: UnitOfWork, run_id: str, items: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """Record the run ``completed`` with ``items`` merged into its progress; return the report.

    A run already finished keeps its report, which is returned as recorded.
    """
    current = session.runs.get_for_update(run_id)
    stored = report_of(current) if current is not None else {}
    if current is not None and current.state in FINISHED:
        return stored
    report = merged(stored.get("items", []), items)
    session.runs.finish(run_id, "completed", json.dumps(report), now)
    _finished_event(session, current, report)
    return report


def _finished_event(session: UnitOfWork, run: GcRunRecord | None, report: dict[str, Any]) -> None:
    """Write the ``retention.finished`` event of a run that just completed."""
    project = session.projects.get(run.project) if run is not None and run.project else None
    data = {
        "run_id": run.id if run is not None else None,
        "state": "completed",
        "project": project.name if project is not None else None,
        "dry_run": run.dry_run if run is not None else False,
        "deleted": report.get("deleted", 0),
        "retained": report.get("retained", 0),
    }
    session.outbox.add(
        events.RETENTION_FINISHED,
        project_id=project.id if project is not None else None,
        data=json.dumps(data),
    )
