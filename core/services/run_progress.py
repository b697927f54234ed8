"""Progress of a control-plane run (GC or retention), kept in the run's own row.

Temporal delivers an activity at least once: a worker killed after an activity's side
effect and before Temporal records its completion leaves the attempt to be retried from
the start, and the retry finds the work already done. So what a run did is not held in
the attempt's memory: each change adds its count to the run's row in the transaction
that makes the change, and the retry adds to that.

Consistency guarantees:
- A count commits together with the change it counts, or neither commits. The row is
  locked while it is added to, so two attempts of one run never lose each other's counts.
- A finished run (``completed``, ``failed`` or ``cancelled``) is never changed again: a late or
  re-delivered attempt leaves the recorded state and report as they are.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, Final

from core.control_records import GcRunRecord
from core.ports import UnitOfWork

#: States of a run that nothing changes any more.
FINISHED: Final = frozenset({"completed", "failed", "cancelled"})


def report_of(run: GcRunRecord) -> dict[str, Any]:
    """The run's report as a JSON object (empty when none was recorded)."""
    loaded = json.loads(run.report) if run.report else {}
    return loaded if isinstance(loaded, dict) else {}


def open_run(session: UnitOfWork, run: GcRunRecord, now: datetime) -> GcRunRecord:
    """Create the run's row if needed and mark it ``running``, keeping its progress.

    Returns the row as it now is; a finished run is returned unchanged (the caller
    returns its recorded report instead of running again).
    """
    session.runs.add(run)
    current = session.runs.get_for_update(run.id) or run
    if current.state in FINISHED:
        return current
    session.runs.finish(run.id, "running", current.report or "{}", now)
    return dataclasses.replace(current, state="running")


def locked_progress(session: UnitOfWork, run_id: str) -> dict[str, Any] | None:
    """The running run's report, locked to be added to; ``None`` if absent or finished."""
    current = session.runs.get_for_update(run_id)
    if current is None or current.state in FINISHED:
        return None
    return report_of(current)


def save_progress(session: UnitOfWork, run_id: str, report: dict[str, Any]) -> None:
    """Store the running run's report (in the caller's transaction)."""
    session.runs.finish(run_id, "running", json.dumps(report), datetime.now(UTC))
