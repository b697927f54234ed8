"""Promotion requests and the scan gate's port (no I/O)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.promotion import (
    Gates,
    NoScanReports,
    ScanFinding,
    ScanReport,
    check_gates,
    parse_source,
    parse_target,
    promotion_id,
    scan_gate,
)
from core.rbac import MATRIX, REGISTRY_ACTIONS, Role, registry_actions

DIGEST = "sha256:" + "a" * 64


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


def test_scan_gate_until_scanning_is_wired_reports_not_scanned() -> None:
    assert NoScanReports().report("team/app", DIGEST) is None
    result = scan_gate(None, "high")
    assert (result.passed, result.reason) == (False, "not scanned")


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
