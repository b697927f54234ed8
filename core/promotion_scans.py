"""The promotion scan gate's reports, read from the scan store (``core.promotion.ScanReports``).

A promotion's scan gate sees the newest *successful* scan of the source image with the
system's and the source project's active allowlist entries taken out, so the gate and the
pull policy (``core.vuln_policy``) agree on what blocks. An image whose latest scan is
running or failed counts as not scanned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from core.promotion import ScanFinding, ScanReport
from core.scan_records import AllowlistEntry, ScanStatus
from core.scan_records import ScanReport as StoredReport
from core.vuln_policy import allowed_ids, unallowed


class ScanReportStore(Protocol):
    """What the gate reads of the scan store (``storage.db.scans.SqlScanStore``)."""

    def report(self, project_id: int, digest: str) -> StoredReport | None: ...

    def allowlist(self, project_id: int | None) -> Sequence[AllowlistEntry]: ...


class StoredScanReports:
    """Scan reports per image for the promotion gate, allowlists applied."""

    def __init__(
        self,
        store: ScanReportStore,
        project_id_of: Callable[[str], int | None],
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._project_id_of = project_id_of
        self._now = now

    def report(self, repository: str, digest: str) -> ScanReport | None:
        """The newest successful report of ``repository@digest``; ``None``: not scanned."""
        project_id = self._project_id_of(repository.partition("/")[0])
        if project_id is None:
            return None
        stored = self._store.report(project_id, digest)
        if stored is None or stored.status is not ScanStatus.SUCCEEDED:
            return None
        entries = [*self._store.allowlist(None), *self._store.allowlist(project_id)]
        left = unallowed(stored, allowed_ids(entries, self._now()))
        return ScanReport(
            [ScanFinding(name, str(severity).lower()) for name, severity in sorted(left.items())]
        )
