"""What users read about scans: summaries, Harbor's report document, and the service.

The full report follows Harbor's vulnerability report schema (media type
:data:`HARBOR_REPORT`, version 1.1: ``generated_at``, ``artifact``, ``scanner``,
``severity``, ``vulnerabilities[]`` with ``preferred_cvss``, ``cwe_ids`` and
``vendor_attributes``); Moorage adds the platform of each finding (in
``vendor_attributes``) since one report covers every platform of an index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from core.errors import NotFoundError
from core.scan_records import (
    SCANNER_NAME,
    SCANNER_VENDOR,
    SCANNER_VERSION,
    AllowlistEntry,
    ReportFilter,
    ScanPolicy,
    ScanReport,
    ScanStore,
    scanner_of,
)
from core.vulndb.severity import Severity

HARBOR_REPORT: Final = "application/vnd.security.vulnerability.report; version=1.1"
SCANNER: Final = {"name": SCANNER_NAME, "vendor": SCANNER_VENDOR, "version": SCANNER_VERSION}
#: Most entries of one allowlist.
MAX_ALLOWLIST: Final = 1000


def worst(report: ScanReport) -> Severity | None:
    """The highest severity of the report's findings (``None``: no finding)."""
    ranks = [item.finding.severity for item in report.findings]
    return max(ranks, key=lambda s: s.rank) if ranks else None


def summary(report: ScanReport, now: datetime) -> dict[str, Any]:
    """The per-artifact summary: status, counts per severity, fixable, scanner, data age."""
    top = worst(report)
    age = None
    if report.data_updated_at is not None:
        age = max(int((now - report.data_updated_at).total_seconds()), 0)
    return {
        "repository": report.repository,
        "digest": report.digest,
        "status": str(report.status),
        "reason": report.reason,
        "severity": str(top) if top is not None else None,
        "total": report.total(),
        "fixable": report.fixable(),
        "counts": report.counts(),
        "scanner": scanner_of(report.scanner),
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "data_updated_at": report.data_updated_at.isoformat() if report.data_updated_at else None,
        "data_age_seconds": age,
        "platforms": list(report.platforms),
    }


def _links(vulnerability_id: str, aliases: Sequence[str]) -> list[str]:
    links = [f"https://osv.dev/vulnerability/{vulnerability_id}"]
    links += [f"https://nvd.nist.gov/vuln/detail/{a}" for a in aliases if a.startswith("CVE-")]
    return links


def harbor_report(report: ScanReport, media_type: str, now: datetime) -> dict[str, Any]:
    """The report in Harbor's vulnerability report schema (version 1.1)."""
    top = worst(report)
    vulnerabilities = []
    for item in report.findings:
        finding = item.finding
        v3 = finding.cvss_vector if finding.cvss_vector and "CVSS:3" in finding.cvss_vector else ""
        vulnerabilities.append(
            {
                "id": finding.vulnerability_id,
                "package": finding.package,
                "version": finding.version,
                "fix_version": finding.fixed_version or "",
                "severity": str(finding.severity),
                "description": finding.summary,
                "links": _links(finding.vulnerability_id, finding.aliases),
                "preferred_cvss": {
                    "score_v3": finding.cvss_score if v3 else None,
                    "score_v2": None,
                    "vector_v3": v3,
                    "vector_v2": "",
                },
                "cwe_ids": [],
                "vendor_attributes": {
                    "aliases": list(finding.aliases),
                    "purl": finding.purl,
                    "package_type": finding.package_type,
                    "ecosystem": finding.ecosystem,
                    "fix_status": str(finding.status),
                    "severity_source": finding.severity_source,
                    "cvss_vector": finding.cvss_vector,
                    "platform": item.platform,
                },
            }
        )
    return {
        "generated_at": (report.finished_at or now).isoformat(),
        "artifact": {
            "repository": report.repository,
            "digest": report.digest,
            "mime_type": media_type,
        },
        "scanner": scanner_of(report.scanner),
        "severity": str(top) if top is not None else "None",
        "vulnerabilities": vulnerabilities,
    }


class ScanReports:
    """Reads of reports and the project's scan settings, by project name.

    Args:
        store: The scan store.
        project_id: The id of a project by name (``None``: no such project).
        changed: Called after a policy or allowlist changed (the pull policy's cache).
    """

    def __init__(
        self,
        store: ScanStore,
        project_id: Callable[[str], int | None],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store, self._project_id, self._changed = store, project_id, changed

    def project_id(self, project: str) -> int:
        """The id of ``project``; ``NotFoundError`` when there is none."""
        return self._id(project)

    def _id(self, project: str) -> int:
        found = self._project_id(project)
        if found is None:
            raise NotFoundError(f"project {project!r} not found", field="project")
        return found

    def report(self, project: str, digest: str) -> ScanReport:
        found = self._store.report(self._id(project), digest)
        if found is None:
            raise NotFoundError(f"no scan of {digest} in project {project!r}", field="digest")
        return found

    def reports(
        self, project: str, where: ReportFilter, after: str | None, limit: int
    ) -> list[ScanReport]:
        return self._store.reports(self._id(project), where, after, limit)

    def policy(self, project: str) -> ScanPolicy:
        return self._store.policy(self._id(project))

    def set_policy(
        self,
        project: str,
        *,
        scan_on_push: bool,
        prevent_severity: Severity | None,
        refuse_unscanned: bool,
    ) -> ScanPolicy:
        policy = ScanPolicy(self._id(project), scan_on_push, prevent_severity, refuse_unscanned)
        self._store.set_policy(policy)
        self._changed()
        return policy

    def allowlist(self, project: str | None) -> list[AllowlistEntry]:
        return self._store.allowlist(None if project is None else self._id(project))

    def set_allowlist(
        self, project: str | None, entries: Sequence[AllowlistEntry]
    ) -> list[AllowlistEntry]:
        unique = {e.vulnerability_id.upper(): e for e in entries}
        kept = [AllowlistEntry(key, e.expires_at, e.comment) for key, e in sorted(unique.items())]
        self._store.set_allowlist(None if project is None else self._id(project), kept)
        self._changed()
        return kept
