"""The outbox event a finished scan report is announced by (``scan.completed``/``failed``).

The store writes the event in the transaction that saves the finished report
(``core.scan_records.ScanStore.save_report``), so a subscriber sees it exactly when the
report is visible; a report saved again (a retried match, a re-match after a data
update) is announced again, since its findings may have changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core import events
from core.scan_records import ScanReport, ScanStatus


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """An outbox event of a finished scan: its kind and JSON data (``details``)."""

    kind: str
    data: str


def scan_event(report: ScanReport) -> ScanEvent | None:
    """The event announcing ``report``; ``None`` while the scan is still running.

    Data: ``status``, ``counts`` (distinct vulnerabilities per severity), ``total``,
    ``fixable`` and, of a failed scan, the ``reason``.
    """
    if report.status is ScanStatus.RUNNING:
        return None
    details: dict[str, object] = {"status": str(report.status)}
    if report.status is ScanStatus.FAILED:
        kind = events.SCAN_FAILED
        details["reason"] = report.reason or "unknown"
    else:
        kind = events.SCAN_COMPLETED
        details.update(counts=report.counts(), total=report.total(), fixable=report.fixable())
    return ScanEvent(kind, json.dumps(details, separators=(",", ":")))
