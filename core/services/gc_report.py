"""What one GC step reviewed and did: the report the collector and the run's progress share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Entries a report lists (counters stay exact beyond it).
REPORT_ITEMS_MAX = 1000


@dataclass
class GcReport:
    """What one GC step reviewed and did (or, in a dry run, would do)."""

    reviewed: int = 0
    deleted: int = 0
    kept: int = 0
    bytes_freed: int = 0
    #: Objects that could not be deleted (their tombstones stay, retried by later runs).
    quarantined: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def note(self, **item: Any) -> None:
        if len(self.items) < REPORT_ITEMS_MAX:
            self.items.append(item)

    def add(self, other: GcReport) -> None:
        self.reviewed += other.reviewed
        self.deleted += other.deleted
        self.kept += other.kept
        self.bytes_freed += other.bytes_freed
        self.quarantined += other.quarantined
        for item in other.items:
            self.note(**item)
