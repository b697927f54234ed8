"""Promotion requests and the scan gate's port (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InvalidInputError
from core.promotion import (
    Gates,
    ScanFinding,
    ScanReport,
    check_gates,
    parse_source,
    parse_target,
    promotion_id,
    scan_gate,
)
from core.promotion_scans import StoredScanReports
from core.rbac import MATRIX, REGISTRY_ACTIONS, Role, registry_actions
from core.scan_records import AllowlistEntry, PlatformFinding, ScanStatus
from core.scan_records import ScanReport as StoredReport
from core.vulndb.matching import Finding, FixStatus
from core.vulndb.severity import Severity

DIGEST = "sha256:" + "a" * 64
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_sources_by_tag_and_by_digest() -> None:
    by_tag = parse_source("team/app:rc1")
    assert (str(by_tag.repository), by_tag.reference.tag) == ("team/app", "rc1")
    by_digest = parse_source(f"team/sub/app@{DIGEST}")
    assert (str(by_digest.repository), str(by_digest.reference.digest)) == ("team/sub/app", DIGEST)


@pytest.mark.parametrize("text", ["team/app", "team/app@sha256:zz", "Team/app:x", "team/app:a/b"])
def test_bad_sources_name_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_source(text)
    assert caught.value.field == "source"


@pytest.mark.parametrize("text", ["team/app", f"team/app@{DIGEST}", "team/app:", "team/app:-x"])
def test_targets_are_tags(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_target(text)
    assert caught.value.field == "target"


def test_the_id_is_one_per_source_digest_and_target() -> None:
    one = promotion_id(DIGEST, "team/app", "prod")
    assert one == promotion_id(DIGEST, "team/app", "prod")
    assert one != promotion_id(DIGEST, "team/app", "stage")
    assert one != promotion_id("sha256:" + "b" * 64, "team/app", "prod")
    assert one.startswith("promotion-")


def test_gate_values_are_checked() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_gates(Gates(max_severity="severe"))
    assert caught.value.field == "gates.max_severity"
    with pytest.raises(InvalidInputError) as caught:
        check_gates(Gates(approval=True, approval_timeout_seconds=0))
    assert caught.value.field == "gates.approval_timeout_seconds"


def test_scan_gate_without_a_report_says_not_scanned() -> None:
    result = scan_gate(None, "high")
    assert (result.passed, result.reason) == (False, "not scanned")


def _finding(vulnerability_id: str, severity: Severity, *aliases: str) -> PlatformFinding:
    found = Finding(
        vulnerability_id,
        aliases,
        "openssl",
        "3.0.1",
        "deb",
        "pkg:deb/debian/openssl@3.0.1",
        "Debian:12",
        "openssl",
        "3.0.1",
        FixStatus.FIXED,
        "3.0.2",
        severity,
        "nvd",
        None,
        None,
        "",
    )
    return PlatformFinding(None, found)


class _Store:
    def __init__(self, status: ScanStatus) -> None:
        self.stored = StoredReport(
            7,
            "team/app",
            DIGEST,
            status,
            NOW,
            findings=(
                _finding("GHSA-aaaa", Severity.CRITICAL, "CVE-2026-1"),
                _finding("DSA-1", Severity.HIGH, "CVE-2026-2"),
                _finding("OSV-3", Severity.MEDIUM),
            ),
        )
        self.allowed = {
            None: [AllowlistEntry("CVE-2026-1")],
            7: [
                AllowlistEntry("OSV-3", expires_at=NOW - timedelta(days=1)),
            ],
        }

    def report(self, project_id: int, digest: str) -> StoredReport | None:
        return self.stored if (project_id, digest) == (7, DIGEST) else None

    def allowlist(self, project_id: int | None) -> list[AllowlistEntry]:
        return self.allowed.get(project_id, [])


def test_the_gate_sees_the_stored_scan_without_allowlisted_findings() -> None:
    reports = StoredScanReports(_Store(ScanStatus.SUCCEEDED), {"team": 7}.get, lambda: NOW)
    report = reports.report("team/app", DIGEST)
    assert report is not None
    # CVE-2026-1 is allowlisted system-wide; OSV-3's project entry has expired.
    assert report.findings == [ScanFinding("CVE-2026-2", "high"), ScanFinding("OSV-3", "medium")]
    assert not scan_gate(report, "high").passed
    assert scan_gate(report, "critical").passed


def test_a_failed_or_missing_scan_or_project_is_not_scanned() -> None:
    failed = StoredScanReports(_Store(ScanStatus.FAILED), {"team": 7}.get, lambda: NOW)
    assert failed.report("team/app", DIGEST) is None
    scanned = StoredScanReports(_Store(ScanStatus.SUCCEEDED), {"team": 7}.get, lambda: NOW)
    assert scanned.report("team/app", "sha256:" + "0" * 64) is None
    assert scanned.report("other/app", DIGEST) is None


def test_scan_gate_counts_findings_at_or_above_the_severity() -> None:
    report = ScanReport([ScanFinding("CVE-1", "medium"), ScanFinding("CVE-2", "high")])
    assert scan_gate(report, "critical").passed
    blocked = scan_gate(report, "high")
    assert (blocked.passed, blocked.reason) == (False, "1 findings at or above high: CVE-2")
    assert not scan_gate(report, "low").passed
    assert scan_gate(ScanReport([]), "low").passed


def test_promotion_permission_in_the_role_matrix() -> None:
    holders = {role for role, held in MATRIX.items() if ("promotion", "create") in held}
    assert holders == {Role.ADMIN, Role.MAINTAINER}
    assert REGISTRY_ACTIONS["promote"] == ("promotion", "create")
    assert "promote" in registry_actions(MATRIX[Role.MAINTAINER])
    assert "promote" not in registry_actions(MATRIX[Role.DEVELOPER])
