"""The vulnerability pull policy's rules: what is scannable, and when a pull is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.scan_records import AllowlistEntry, PlatformFinding, ScanPolicy, ScanReport, ScanStatus
from core.vuln_policy import allowed_ids, decide, scannable
from core.vulndb.matching import Finding, FixStatus
from core.vulndb.severity import Severity

NOW = datetime(2026, 12, 3, tzinfo=UTC)
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def _manifest(**fields: object) -> bytes:
    base = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": CONFIG, "digest": "sha256:" + "a" * 64, "size": 2},
        "layers": [{"mediaType": LAYER, "digest": "sha256:" + "b" * 64, "size": 2}],
    }
    return json.dumps(base | fields).encode()


def test_images_and_indexes_are_scannable_other_artifacts_are_exempt() -> None:
    oci = "application/vnd.oci.image.manifest.v1+json"
    assert scannable(oci, _manifest())
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "c" * 64}]}
    assert scannable("application/vnd.oci.image.index.v1+json", json.dumps(index).encode())
    assert not scannable(oci, _manifest(artifactType="application/spdx+json"))
    subject = {"mediaType": oci, "digest": "sha256:" + "d" * 64, "size": 1}
    assert not scannable(oci, _manifest(subject=subject))
    cosign = _manifest(
        layers=[{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                 "digest": "sha256:" + "e" * 64, "size": 1}]
    )  # fmt: skip
    assert not scannable(oci, cosign)
    helm = _manifest(config={"mediaType": "application/vnd.cncf.helm.config.v1+json"})
    assert not scannable(oci, helm)
    assert not scannable(oci, _manifest(config={"mediaType": EMPTY}))
    assert not scannable(oci, b"not json")


def _report(status: ScanStatus, *findings: tuple[str, Severity, tuple[str, ...]]) -> ScanReport:
    return ScanReport(
        1, "p/app", "sha256:" + "f" * 64, status, NOW, NOW,
        reason="layer is corrupt" if status is ScanStatus.FAILED else None,
        findings=tuple(
            PlatformFinding(None, Finding(
                vid, aliases, "openssl", "1", "deb", "pkg:deb/debian/openssl@1", "Debian:12",
                "openssl", "1", FixStatus.UNFIXED, None, severity, "cvss", None, None, "",
            ))
            for vid, severity, aliases in findings
        ),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "report", "refused"),
    [
        (ScanPolicy(1), None, False),
        (ScanPolicy(1, refuse_unscanned=True), None, True),
        (ScanPolicy(1, prevent_severity=Severity.HIGH), None, False),
        (ScanPolicy(1, prevent_severity=Severity.HIGH), _report(ScanStatus.FAILED), True),
        (
            ScanPolicy(1, prevent_severity=Severity.HIGH),
            _report(ScanStatus.SUCCEEDED, ("GHSA-1", Severity.MEDIUM, ())),
            False,
        ),
        (
            ScanPolicy(1, prevent_severity=Severity.MEDIUM),
            _report(ScanStatus.SUCCEEDED, ("GHSA-1", Severity.MEDIUM, ())),
            True,
        ),
    ],
)
def test_decisions(policy: ScanPolicy, report: ScanReport | None, refused: bool) -> None:
    assert (decide(policy, report, frozenset()) is not None) is refused


def test_allowlists_match_ids_and_aliases_and_expire() -> None:
    report = _report(
        ScanStatus.SUCCEEDED,
        ("DSA-5532-1", Severity.HIGH, ("CVE-2023-5363",)),
        ("GHSA-x", Severity.CRITICAL, ()),
    )
    policy = ScanPolicy(1, prevent_severity=Severity.HIGH)
    refusal = decide(policy, report, frozenset())
    assert refusal is not None
    assert refusal.vulnerabilities == ("GHSA-x", "CVE-2023-5363")
    assert "/api/v1/projects/acme/scan-allowlist" in refusal.message("acme")
    entries = [
        AllowlistEntry("cve-2023-5363"),
        AllowlistEntry("GHSA-x", expires_at=NOW - timedelta(seconds=1)),
    ]
    remaining = decide(policy, report, allowed_ids(entries, NOW))
    assert remaining is not None
    assert remaining.vulnerabilities == ("GHSA-x",)
    entries[1] = AllowlistEntry("GHSA-x", expires_at=NOW + timedelta(days=1))
    assert decide(policy, report, allowed_ids(entries, NOW)) is None
