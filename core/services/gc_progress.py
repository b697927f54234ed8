"""What a GC run did, step by step, kept in its row (see ``core.services.run_progress``).

While the run is running its report holds the counters of each step under ``steps``
(and their sums at the top); the final report is built from them, so a step retried
after a crash reports what every attempt of it did, not only what the last one found.

Consistency guarantees:
- A batch's counters commit in the batch's own transaction (the one that deletes rows
  or drops review rows), so a committed deletion is counted exactly once.
- The orphan sweep deletes objects inside its chunk's transaction; a crash between a
  chunk's deletion and its commit loses that chunk's count (the objects are gone, and a
  retried sweep no longer lists them).
- Objects a sweep keeps (still within the grace period) are seen again by a retried
  sweep; they count once per tenant, as the last sweep of the tenant found them (its
  first chunk drops the count of the earlier attempt, its chunks add theirs).
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, Final

from core import events
from core.services.run_progress import FINISHED, locked_progress, report_of, save_progress

if TYPE_CHECKING:
    from datetime import datetime

    from core.control_records import GcRunRecord
    from core.ports import UnitOfWork
    from core.services.gc_report import GcReport

#: Steps of a run, as named in its progress.
MANIFESTS: Final = "manifests"
BLOBS: Final = "blobs"
ORPHANS: Final = "orphans"
#: The counters of a report.
COUNTERS: Final = ("reviewed", "deleted", "kept", "bytes_freed", "quarantined")
#: Entries a run's report lists over all its steps (counters stay exact beyond it).
ITEMS_MAX: Final = 1000


def add_step(
    session: UnitOfWork,
    run_id: str,
    step: str,
    report: GcReport,
    *,
    tenant: str | None = None,
    first: bool = False,
) -> None:
    """Add one batch of ``step`` to the run's progress (in the batch's transaction).

    ``tenant`` marks a chunk of a sweep of that storage tenant: its kept objects are
    kept apart per tenant; the sweep's ``first`` chunk replaces the tenant's count of an
    earlier sweep, its later chunks add to it. Nothing is written for a run that has no
    row or has finished.
    """
    progress = locked_progress(session, run_id)
    if progress is None:
        return
    steps: dict[str, dict[str, Any]] = progress.setdefault("steps", {})
    entry = steps.setdefault(step, dict.fromkeys(COUNTERS, 0) | {"items": []})
    held: dict[str, int] = entry.setdefault("held", {})
    if report.reviewed == 0 and (not first or held.get(tenant or "") is None):
        return  # NOTE: nothing to add (a chunk without orphans)
    entry["deleted"] += report.deleted
    entry["bytes_freed"] += report.bytes_freed
    entry["quarantined"] = entry.get("quarantined", 0) + report.quarantined
    if tenant is None:
        entry["reviewed"] += report.reviewed
        entry["kept"] += report.kept
    else:
        entry["reviewed"] += report.reviewed - report.kept
        kept = report.kept + (0 if first else held.get(tenant, 0))
        held.pop(tenant, None)
        if kept:
            held[tenant] = kept
    room = ITEMS_MAX - sum(len(other["items"]) for other in steps.values())
    entry["items"].extend(report.items[: max(room, 0)])
    progress.update({key: sum(_totals(other)[key] for other in steps.values()) for key in COUNTERS})
    save_progress(session, run_id, progress)


def set_dry_step(session: UnitOfWork, run_id: str, step: str, report: GcReport) -> None:
    """Store what a dry run's ``step`` would do as the step's progress (replacing it).

    A dry run changes nothing, so a retried step finds the same and replaces its entry.
    """
    progress = locked_progress(session, run_id)
    if progress is None:
        return
    steps: dict[str, dict[str, Any]] = progress.setdefault("steps", {})
    steps.pop(step, None)
    room = ITEMS_MAX - sum(len(other["items"]) for other in steps.values())
    steps[step] = {key: getattr(report, key) for key in COUNTERS} | {
        "items": report.items[: max(room, 0)]
    }
    progress.update({key: sum(_totals(other)[key] for other in steps.values()) for key in COUNTERS})
    save_progress(session, run_id, progress)


def summary(run: GcRunRecord, step: str | None = None) -> dict[str, int]:
    """The counters of the run's ``step`` (every step when ``None``), without items."""
    report = final_report(run) if step is None else step_report(run, step)
    return {key: int((report or {}).get(key, 0)) for key in COUNTERS}


def _totals(entry: dict[str, Any]) -> dict[str, int]:
    held = sum(int(kept) for kept in entry.get("held", {}).values())
    totals = {key: int(entry.get(key, 0)) for key in COUNTERS}
    totals["reviewed"] += held
    totals["kept"] += held
    return totals


def step_report(run: GcRunRecord, step: str) -> dict[str, Any] | None:
    """What every attempt of ``step`` did (counters and ``items``), from the run's row.

    ``None`` when the row holds no progress of the step (nothing done, a dry run, or
    the run already finished).
    """
    entry = report_of(run).get("steps", {}).get(step)
    if not isinstance(entry, dict):
        return None
    return {**_totals(entry), "items": list(entry.get("items", []))}


def final_report(run: GcRunRecord) -> dict[str, Any] | None:
    """The run's report built from its steps' progress (``None`` if it holds none)."""
    steps = report_of(run).get("steps")
    if not isinstance(steps, dict):
        return None
    report: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    items: list[dict[str, Any]] = []
    for entry in steps.values():
        for key, value in _totals(entry).items():
            report[key] += value
        items.extend(entry.get("items", []))
    report["items"] = items[:ITEMS_MAX]
    return report


def close_run(
    session: UnitOfWork, run: GcRunRecord, reported: dict[str, Any] | None, now: datetime
) -> GcRunRecord:
    """Record the run's final state (``run.state``) and its report, once.

    The report is built from the row's progress; ``reported`` (the workflow's own sums)
    is used only when the row holds none. A finished run stays as it is.

    Returns:
        The row as it now is.
    """
    session.runs.add(run)
    current = session.runs.get_for_update(run.id)
    if current is not None and current.state in FINISHED:
        return current
    built = final_report(current) if current is not None else None
    report = json.dumps(built if built is not None else reported or {})
    session.runs.finish(run.id, run.state, report, now)
    counters = {k: v for k, v in json.loads(report).items() if k != "items"}
    data = {"run_id": run.id, "state": run.state, "dry_run": run.dry_run, "report": counters}
    session.outbox.add(events.GC_FINISHED, data=json.dumps(data))
    return dataclasses.replace(current or run, state=run.state, report=report)
