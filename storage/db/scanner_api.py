"""SQL of the scans served through the scanner API (``core.scanner_api.AdapterScanStore``).

The pull authorization is sealed with the installation's master key (context
``scanner-api-auth:<id>``) and cleared by ``finish``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from core.scan_records import (
    Inventory,
    finding_from_json,
    finding_to_json,
    package_from_json,
    package_to_json,
)
from core.scanner_api import SBOM, SBOM_MEDIA_TYPES, VULNERABILITY, AdapterScan, AdapterStatus
from core.sealing import SecretBox
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.scan_tables import ScannerApiScanRow
from storage.db.scans import _utc

SCAN = table_of(ScannerApiScanRow)


def _context(scan_id: str) -> str:
    return f"scanner-api-auth:{scan_id}"


def _capabilities_to_json(scan: AdapterScan) -> str:
    return json.dumps(
        {"types": list(scan.capabilities), "sbom_media_types": list(scan.sbom_media_types)}
    )


def _capabilities_from_json(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found = json.loads(text or "{}")
    types = tuple(found.get("types") or (VULNERABILITY, SBOM))
    return types, tuple(found.get("sbom_media_types") or SBOM_MEDIA_TYPES)


def _inventories_to_json(inventories: tuple[Inventory, ...]) -> str:
    return json.dumps(
        [
            {
                "digest": inventory.digest,
                "platform": inventory.platform,
                "packages": [package_to_json(p) for p in inventory.packages],
            }
            for inventory in inventories
        ],
        separators=(",", ":"),
    )


def _inventories_from_json(text: str, analyzed: datetime | None) -> tuple[Inventory, ...]:
    return tuple(
        Inventory(
            item["digest"],
            item["platform"],
            None,
            tuple(package_from_json(p) for p in item["packages"]),
            analyzed_at=analyzed,
        )
        for item in json.loads(text or "[]")
    )


class SqlAdapterScans:
    """Served scans on these engines."""

    def __init__(self, engines: Engines, box: Callable[[], SecretBox]) -> None:
        """``box()`` opens the master key's secret box (on first use, not here)."""
        self._engines, self._open_box = engines, box
        self._opened: SecretBox | None = None

    @property
    def _box(self) -> SecretBox:
        if self._opened is None:
            self._opened = self._open_box()
        return self._opened

    def create(self, scan: AdapterScan) -> None:
        sealed = (
            self._box.seal(scan.authorization.encode(), _context(scan.id))
            if scan.authorization
            else ""
        )
        with self._engines.writing() as connection, connection.begin():
            connection.execute(
                insert(SCAN).values(
                    id=scan.id,
                    registry_url=scan.registry_url,
                    repository=scan.repository,
                    digest=scan.digest,
                    mime_type=scan.mime_type,
                    status=str(scan.status),
                    authorization=sealed,
                    insecure=scan.insecure,
                    created_at=scan.created_at,
                    findings="[]",
                    platforms="[]",
                    capabilities=_capabilities_to_json(scan),
                    inventories="[]",
                )
            )

    def _scan(self, row: Any) -> AdapterScan:
        created = _utc(row.created_at)
        assert created is not None  # noqa: S101 - a non-null column
        authorization = (
            self._box.open(row.authorization, _context(row.id)).decode()
            if row.authorization
            else ""
        )
        types, sbom_media_types = _capabilities_from_json(row.capabilities)
        finished = _utc(row.finished_at)
        return AdapterScan(
            id=row.id,
            registry_url=row.registry_url,
            repository=row.repository,
            digest=row.digest,
            mime_type=row.mime_type,
            status=AdapterStatus(row.status),
            created_at=created,
            authorization=authorization,
            insecure=bool(row.insecure),
            finished_at=finished,
            reason=row.reason,
            data_updated_at=_utc(row.data_updated_at),
            findings=tuple(finding_from_json(f) for f in json.loads(row.findings)),
            platforms=tuple(json.loads(row.platforms)),
            capabilities=types,
            sbom_media_types=sbom_media_types,
            inventories=_inventories_from_json(row.inventories, finished),
        )

    def get(self, scan_id: str) -> AdapterScan | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(SCAN).where(SCAN.c.id == scan_id)).first()
        return None if row is None else self._scan(row)

    def mark_running(self, scan_id: str) -> None:
        queued = (SCAN.c.id == scan_id) & (SCAN.c.status == str(AdapterStatus.QUEUED))
        with self._engines.writing() as connection, connection.begin():
            connection.execute(update(SCAN).where(queued).values(status=str(AdapterStatus.RUNNING)))

    def finish(self, scan: AdapterScan) -> None:
        findings = [finding_to_json(f) for f in scan.findings]
        with self._engines.writing() as connection, connection.begin():
            connection.execute(
                update(SCAN)
                .where(SCAN.c.id == scan.id)
                .values(
                    status=str(scan.status),
                    authorization="",
                    finished_at=scan.finished_at,
                    reason=scan.reason,
                    data_updated_at=scan.data_updated_at,
                    findings=json.dumps(findings, separators=(",", ":")),
                    platforms=json.dumps(list(scan.platforms)),
                    inventories=_inventories_to_json(scan.inventories),
                )
            )

    def purge(self, before: datetime) -> int:
        with self._engines.writing() as connection, connection.begin():
            result = connection.execute(delete(SCAN).where(SCAN.c.created_at < before))
        return int(result.rowcount or 0)
