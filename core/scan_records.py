"""Scan reports, package inventories, allowlists and scan policies: plain values and ports.

An **inventory** is what the analyzer found in one image manifest (one platform): the OS
and the packages, stored once per (project, manifest digest) so vulnerability data can be
matched again without reading a layer. A **report** is the latest result for one artifact
(an image, or an index with one inventory per platform), unique per (project, digest):
scanning again replaces it, so a retried or repeated scan never leaves a second report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from core.scan.packages import OsRelease, Package, PackageType
from core.vulndb.matching import Finding, FixStatus
from core.vulndb.severity import Severity

#: What an allowlist entry's id may be (a CVE, GHSA or other advisory id), its length and
#: the number of entries one list holds, and a comment's length.
VULN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
VULN_ID_MAX = 128
ALLOWLIST_MAX = 1000
ALLOWLIST_COMMENT_MAX = 1024

#: The scanner name and version reports carry.
SCANNER_NAME = "Moorage"
SCANNER_VENDOR = "Moorage"
SCANNER_VERSION = "1.0"
#: How a report of an external scanner (``core.scanner_api``) names it:
#: ``api:<name> <version>``.
EXTERNAL_PREFIX = "api:"


def is_external(scanner: str) -> bool:
    """Whether a stored report's scanner is an external one (no inventory behind it)."""
    return scanner.startswith(EXTERNAL_PREFIX)


def scanner_of(scanner: str) -> dict[str, str]:
    """``{name, vendor, version}`` of the scanner a stored report names."""
    if not is_external(scanner):
        return {"name": SCANNER_NAME, "vendor": SCANNER_VENDOR, "version": SCANNER_VERSION}
    name, _, version = scanner.removeprefix(EXTERNAL_PREFIX).rpartition(" ")
    if not name:
        name, version = version, ""
    return {"name": name, "vendor": "external", "version": version}


class ScanStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Inventory:
    """The packages of one image manifest (``failure``: why the analysis failed)."""

    digest: str
    platform: str | None
    os: OsRelease | None
    packages: tuple[Package, ...]
    failure: str | None = None
    #: When it was stored (set by the store on reads).
    analyzed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlatformFinding:
    """A finding of one platform of an artifact."""

    platform: str | None
    finding: Finding


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The latest scan of one artifact."""

    project_id: int
    repository: str
    digest: str
    status: ScanStatus
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None
    #: When the vulnerability data the findings come from was last imported.
    data_updated_at: datetime | None = None
    findings: tuple[PlatformFinding, ...] = ()
    platforms: tuple[str, ...] = ()
    scanner: str = f"{SCANNER_NAME} {SCANNER_VERSION}"

    def counts(self) -> dict[str, int]:
        """Distinct vulnerabilities per severity (every severity present, zero or more)."""
        worst: dict[str, Severity] = {}
        for item in self.findings:
            known = worst.get(item.finding.vulnerability_id)
            if known is None or item.finding.severity.rank > known.rank:
                worst[item.finding.vulnerability_id] = item.finding.severity
        counts = {str(s): 0 for s in Severity}
        for severity in worst.values():
            counts[str(severity)] += 1
        return counts

    def fixable(self) -> int:
        """Distinct vulnerabilities with a fixed version for at least one package."""
        return len(
            {
                i.finding.vulnerability_id
                for i in self.findings
                if i.finding.status is FixStatus.FIXED
            }
        )

    def total(self) -> int:
        return len({i.finding.vulnerability_id for i in self.findings})


@dataclass(frozen=True, slots=True)
class AllowlistEntry:
    """A vulnerability id (CVE, GHSA, ...) that does not count for the pull policy."""

    vulnerability_id: str
    expires_at: datetime | None = None
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class ScanPolicy:
    """A project's scan settings.

    Attributes:
        scan_on_push: Scan every pushed image (on by default, also without a row).
        prevent_severity: Refuse pulls of images with a finding at or above it.
        refuse_unscanned: Refuse pulls of scannable images without a report (or whose
            scan failed).
    """

    project_id: int
    scan_on_push: bool = True
    prevent_severity: Severity | None = None
    refuse_unscanned: bool = False

    @property
    def gates_pulls(self) -> bool:
        return self.prevent_severity is not None or self.refuse_unscanned


@dataclass(frozen=True, slots=True)
class ReportFilter:
    repository: str | None = None
    status: ScanStatus | None = None
    #: Only reports with a finding at or above this severity.
    min_severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class ReportKey:
    project_id: int
    repository: str
    digest: str


class ScanStore(Protocol):
    """Stored inventories, reports, allowlists and policies.

    Consistency: each method is one transaction; ``save_report`` replaces the report of
    (project, digest) as a whole (readers see the old one or the new one); saving the
    same inventory or report again changes nothing else, so activities may repeat.
    """

    def inventory(self, project_id: int, digest: str) -> Inventory | None: ...

    def save_inventory(self, project_id: int, inventory: Inventory) -> None: ...

    def report(self, project_id: int, digest: str) -> ScanReport | None: ...

    def save_report(self, report: ScanReport) -> None: ...

    def mark_running(self, project_id: int, repository: str, digest: str, at: datetime) -> None:
        """Set the report's status to running (creating an empty one if none exists)."""

    def reports(
        self, project_id: int, where: ReportFilter, after: str | None, limit: int
    ) -> list[ScanReport]:
        """Reports of a project ordered by digest, after the digest ``after``."""

    def report_keys(self, after: int, limit: int) -> list[tuple[int, ReportKey]]:
        """(row id, key) of every report with an id above ``after``, in id order."""

    def allowlist(self, project_id: int | None) -> list[AllowlistEntry]: ...

    def set_allowlist(self, project_id: int | None, entries: Sequence[AllowlistEntry]) -> None: ...

    def policy(self, project_id: int) -> ScanPolicy: ...

    def set_policy(self, policy: ScanPolicy) -> None: ...

    def gating_policies(self) -> dict[str, ScanPolicy]:
        """The policies that gate pulls, by project name."""


# -- JSON forms (stored columns) -------------------------------------------------------


def package_to_json(package: Package) -> list[Any]:
    return [
        str(package.type),
        package.name,
        package.version,
        package.purl,
        package.location,
        package.source_name,
        package.source_version,
        list(package.licenses),
    ]


def package_from_json(item: list[Any]) -> Package:
    kind, name, version, purl, location, source_name, source_version, licenses = item
    return Package(
        PackageType(kind),
        name,
        version,
        purl,
        location,
        source_name,
        source_version,
        tuple(licenses),
    )


def os_to_json(os_release: OsRelease | None) -> str | None:
    return None if os_release is None else json.dumps(asdict(os_release))


def os_from_json(text: str | None) -> OsRelease | None:
    if not text:
        return None
    data = json.loads(text)
    data["id_like"] = tuple(data.get("id_like") or ())
    return OsRelease(**data)


def finding_to_json(item: PlatformFinding) -> dict[str, Any]:
    data = asdict(item.finding)
    data["aliases"] = list(item.finding.aliases)
    data["platform"] = item.platform
    return data


def finding_from_json(data: dict[str, Any]) -> PlatformFinding:
    values = dict(data)
    platform = values.pop("platform", None)
    values["aliases"] = tuple(values.get("aliases") or ())
    values["status"] = FixStatus(values["status"])
    values["severity"] = Severity(values["severity"])
    return PlatformFinding(platform, Finding(**values))


@dataclass(frozen=True, slots=True)
class ScanTarget:
    """One artifact to scan, by value (what crosses the Temporal boundary)."""

    project_id: int
    project: str
    repository: str
    digest: str


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """A stored manifest as a scan candidate."""

    target: ScanTarget
    media_type: str
    payload: bytes
