"""SQL of image scanning (``core.scan_records.ScanStore``) and of scan candidates.

Each method is one transaction; saving a finished report writes its outbox event
(``core.scan_events``) in the same transaction. Inventories and reports are unique per
(project, digest): saving replaces the row in the same transaction that deletes the old
one, so a repeated save (an activity retried after its worker died) leaves exactly one row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from core.scan_events import scan_event
from core.scan_records import (
    AllowlistEntry,
    Inventory,
    ReportFilter,
    ReportKey,
    ScanPolicy,
    ScanReport,
    ScanStatus,
    ScanTarget,
    StoredArtifact,
    finding_from_json,
    finding_to_json,
    os_from_json,
    os_to_json,
    package_from_json,
    package_to_json,
)
from core.vulndb.severity import Severity
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.repos.outbox import SqlOutbox
from storage.db.scan_tables import (
    ScanAllowlistRow,
    ScanInventoryRow,
    ScanPolicyRow,
    ScanReportRow,
)
from storage.db.tables import Manifest, Project, Repository

INVENTORY, REPORT = table_of(ScanInventoryRow), table_of(ScanReportRow)
ALLOW, POLICY = table_of(ScanAllowlistRow), table_of(ScanPolicyRow)
_MANIFEST, _REPOSITORY, _PROJECT = table_of(Manifest), table_of(Repository), table_of(Project)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _report(row: Any) -> ScanReport:
    started = _utc(row.started_at)
    assert started is not None  # noqa: S101 - a non-null column
    return ScanReport(
        project_id=row.project_id,
        repository=row.repository,
        digest=row.digest,
        status=ScanStatus(row.status),
        started_at=started,
        finished_at=_utc(row.finished_at),
        reason=row.reason,
        data_updated_at=_utc(row.data_updated_at),
        findings=tuple(finding_from_json(f) for f in json.loads(row.findings)),
        platforms=tuple(json.loads(row.platforms)),
        scanner=row.scanner,
    )


def _policy(row: Any) -> ScanPolicy:
    return ScanPolicy(
        row.project_id,
        row.scan_on_push,
        Severity(row.prevent_severity) if row.prevent_severity else None,
        row.refuse_unscanned,
    )


class SqlScanStore:
    """Scan state in the metadata database (SQLite and PostgreSQL)."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    # -- inventories ----------------------------------------------------------------------

    def inventory(self, project_id: int, digest: str) -> Inventory | None:
        where = (INVENTORY.c.project_id == project_id) & (INVENTORY.c.digest == digest)
        with self._engines.read.connect() as connection:
            row = connection.execute(select(INVENTORY).where(where)).first()
        if row is None:
            return None
        return Inventory(
            row.digest,
            row.platform,
            os_from_json(row.os),
            tuple(package_from_json(p) for p in json.loads(row.packages)),
            row.failure,
            _utc(row.created_at),
        )

    def save_inventory(self, project_id: int, inventory: Inventory) -> None:
        values = {
            "project_id": project_id,
            "digest": inventory.digest,
            "platform": inventory.platform,
            "os": os_to_json(inventory.os),
            "packages": json.dumps(
                [package_to_json(p) for p in inventory.packages], separators=(",", ":")
            ),
            "failure": inventory.failure,
            "created_at": datetime.now(UTC),
        }
        where = (INVENTORY.c.project_id == project_id) & (INVENTORY.c.digest == inventory.digest)
        with self._engines.writing() as connection, connection.begin():
            connection.execute(delete(INVENTORY).where(where))
            connection.execute(insert(INVENTORY).values(**values))

    # -- reports --------------------------------------------------------------------------

    def report(self, project_id: int, digest: str) -> ScanReport | None:
        where = (REPORT.c.project_id == project_id) & (REPORT.c.digest == digest)
        with self._engines.read.connect() as connection:
            row = connection.execute(select(REPORT).where(where)).first()
        return None if row is None else _report(row)

    def save_report(self, report: ScanReport) -> None:
        worst = max((f.finding.severity.rank for f in report.findings), default=-1)
        values = {
            "project_id": report.project_id,
            "repository": report.repository,
            "digest": report.digest,
            "status": str(report.status),
            "reason": report.reason,
            "scanner": report.scanner,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "data_updated_at": report.data_updated_at,
            "worst": worst,
            "findings": json.dumps(
                [finding_to_json(f) for f in report.findings], separators=(",", ":")
            ),
            "platforms": json.dumps(list(report.platforms)),
        }
        where = (REPORT.c.project_id == report.project_id) & (REPORT.c.digest == report.digest)
        with self._engines.writing() as connection, connection.begin():
            found = connection.execute(select(REPORT.c.id).where(where)).first()
            if found is None:
                connection.execute(insert(REPORT).values(**values))
            else:
                connection.execute(update(REPORT).where(REPORT.c.id == found.id).values(**values))
            announced = scan_event(report)
            if announced is not None:
                SqlOutbox(connection).add(
                    announced.kind,
                    project_id=report.project_id,
                    repository=report.repository,
                    digest=report.digest,
                    data=announced.data,
                )

    def mark_running(self, project_id: int, repository: str, digest: str, at: datetime) -> None:
        where = (REPORT.c.project_id == project_id) & (REPORT.c.digest == digest)
        with self._engines.writing() as connection, connection.begin():
            found = connection.execute(select(REPORT.c.id).where(where)).first()
            if found is not None:
                connection.execute(
                    update(REPORT)
                    .where(REPORT.c.id == found.id)
                    .values(status=str(ScanStatus.RUNNING), started_at=at, repository=repository)
                )
                return
            connection.execute(
                insert(REPORT).values(
                    project_id=project_id,
                    repository=repository,
                    digest=digest,
                    status=str(ScanStatus.RUNNING),
                    scanner="",
                    started_at=at,
                    worst=-1,
                    findings="[]",
                    platforms="[]",
                )
            )

    def reports(
        self, project_id: int, where: ReportFilter, after: str | None, limit: int
    ) -> list[ScanReport]:
        query = select(REPORT).where(REPORT.c.project_id == project_id)
        if where.repository is not None:
            query = query.where(REPORT.c.repository == where.repository)
        if where.status is not None:
            query = query.where(REPORT.c.status == str(where.status))
        if where.min_severity is not None:
            query = query.where(REPORT.c.worst >= where.min_severity.rank)
        if after is not None:
            query = query.where(REPORT.c.digest > after)
        query = query.order_by(REPORT.c.digest).limit(limit)
        with self._engines.read.connect() as connection:
            return [_report(row) for row in connection.execute(query)]

    def report_keys(self, after: int, limit: int) -> list[tuple[int, ReportKey]]:
        query = (
            select(REPORT.c.id, REPORT.c.project_id, REPORT.c.repository, REPORT.c.digest)
            .where(REPORT.c.id > after)
            .order_by(REPORT.c.id)
            .limit(limit)
        )
        with self._engines.read.connect() as connection:
            return [
                (r.id, ReportKey(r.project_id, r.repository, r.digest))
                for r in connection.execute(query)
            ]

    # -- allowlists and policies ------------------------------------------------------------

    def allowlist(self, project_id: int | None) -> list[AllowlistEntry]:
        scope = (
            ALLOW.c.project_id.is_(None) if project_id is None else ALLOW.c.project_id == project_id
        )
        with self._engines.read.connect() as connection:
            rows = connection.execute(
                select(ALLOW).where(scope).order_by(ALLOW.c.vulnerability_id)
            ).all()
        return [AllowlistEntry(r.vulnerability_id, _utc(r.expires_at), r.comment) for r in rows]

    def set_allowlist(self, project_id: int | None, entries: Sequence[AllowlistEntry]) -> None:
        scope = (
            ALLOW.c.project_id.is_(None) if project_id is None else ALLOW.c.project_id == project_id
        )
        rows = [
            {
                "project_id": project_id,
                "vulnerability_id": e.vulnerability_id,
                "expires_at": e.expires_at,
                "comment": e.comment,
            }
            for e in entries
        ]
        with self._engines.writing() as connection, connection.begin():
            connection.execute(delete(ALLOW).where(scope))
            if rows:
                connection.execute(insert(ALLOW), rows)

    def policy(self, project_id: int) -> ScanPolicy:
        with self._engines.read.connect() as connection:
            row = connection.execute(
                select(POLICY).where(POLICY.c.project_id == project_id)
            ).first()
        return ScanPolicy(project_id) if row is None else _policy(row)

    def set_policy(self, policy: ScanPolicy) -> None:
        values = {
            "scan_on_push": policy.scan_on_push,
            "prevent_severity": str(policy.prevent_severity) if policy.prevent_severity else None,
            "refuse_unscanned": policy.refuse_unscanned,
        }
        with self._engines.writing() as connection, connection.begin():
            connection.execute(delete(POLICY).where(POLICY.c.project_id == policy.project_id))
            connection.execute(insert(POLICY).values(project_id=policy.project_id, **values))

    def gating_policies(self) -> dict[str, ScanPolicy]:
        query = (
            select(POLICY, _PROJECT.c.name)
            .join(_PROJECT, _PROJECT.c.id == POLICY.c.project_id)
            .where(POLICY.c.prevent_severity.is_not(None) | POLICY.c.refuse_unscanned.is_(True))
        )
        with self._engines.read.connect() as connection:
            return {row.name: _policy(row) for row in connection.execute(query)}


class SqlArtifacts:
    """Stored manifests as scan candidates, read by repository name and digest."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def _query(self) -> Any:
        return (
            select(
                _MANIFEST.c.id,
                _MANIFEST.c.digest,
                _MANIFEST.c.media_type,
                _MANIFEST.c.payload,
                _REPOSITORY.c.name.label("repository"),
                _PROJECT.c.id.label("project_id"),
                _PROJECT.c.name.label("project"),
                _PROJECT.c.storage_id,
            )
            .join(_REPOSITORY, _REPOSITORY.c.id == _MANIFEST.c.repository_id)
            .join(_PROJECT, _PROJECT.c.id == _REPOSITORY.c.project_id)
        )

    @staticmethod
    def _artifact(row: Any) -> StoredArtifact:
        target = ScanTarget(row.project_id, row.project, row.repository, row.digest)
        return StoredArtifact(target, row.media_type, bytes(row.payload))

    def manifest(self, repository: str, digest: str) -> tuple[StoredArtifact, str] | None:
        """The manifest ``digest`` of ``repository`` and its project's tenant key."""
        query = self._query().where(
            (_REPOSITORY.c.name == repository) & (_MANIFEST.c.digest == digest)
        )
        with self._engines.read.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else (self._artifact(row), row.storage_id)

    def page(
        self, project_id: int | None, after: int, limit: int
    ) -> list[tuple[int, StoredArtifact]]:
        """Manifests (of one project, or all) with an id above ``after``, in id order."""
        query = self._query().where(_MANIFEST.c.id > after)
        if project_id is not None:
            query = query.where(_PROJECT.c.id == project_id)
        query = query.order_by(_MANIFEST.c.id).limit(limit)
        with self._engines.read.connect() as connection:
            return [(row.id, self._artifact(row)) for row in connection.execute(query)]
