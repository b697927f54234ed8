"""The scanner API's documents: report negotiation, another scanner's report read back,
the SBOM formats a scanner offers and its SBOM report read back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.scan_records import PlatformFinding, ScanReport, ScanStatus, scanner_of
from core.scan_reports import HARBOR_REPORT, harbor_report
from core.scanner_api import (
    NATIVE_REPORT,
    SBOM_REPORT,
    ExternalScannerError,
    ScanApiError,
    findings_of,
    report_type,
    sbom_formats,
    sbom_of,
    scanner_label,
)
from core.vulndb.matching import Finding, FixStatus
from core.vulndb.severity import Severity


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("", HARBOR_REPORT),
        ("*/*", HARBOR_REPORT),
        (HARBOR_REPORT, HARBOR_REPORT),
        ("application/vnd.security.vulnerability.report; version=1.1", HARBOR_REPORT),
        (NATIVE_REPORT, NATIVE_REPORT),
        (f"text/html, {NATIVE_REPORT}", NATIVE_REPORT),
        (SBOM_REPORT, SBOM_REPORT),
        ("application/vnd.security.sbom.report+json", SBOM_REPORT),
    ],
)
def test_the_report_type_follows_accept(accept: str, wanted: str) -> None:
    assert report_type(accept) == wanted


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.security.sbom.report+json; version=2.0",
        "application/vnd.security.vulnerability.report; version=9.9",
        "application/vnd.scanner.adapter.vuln.report.raw",
        "text/html",
    ],
)
def test_a_report_type_not_produced_is_refused_with_501(accept: str) -> None:
    """v1.2: 501, the scanner has no capability to handle the mime type."""
    with pytest.raises(ScanApiError) as caught:
        report_type(accept)
    assert caught.value.status == 501


def test_the_sbom_formats_a_scanners_metadata_offers() -> None:
    both = {
        "capabilities": [
            {"type": "vulnerability", "produces_mime_types": [HARBOR_REPORT]},
            {
                "type": "sbom",
                "produces_mime_types": [SBOM_REPORT],
                "additional_attributes": {
                    "sbom_media_types": ["application/spdx+json", "application/spdx+xml",
                                         "application/vnd.cyclonedx+json"]
                },
            },
        ]
    }  # fmt: skip
    assert sbom_formats(both) == ("application/spdx+json", "application/vnd.cyclonedx+json")
    # v1.1 scanners: no sbom capability, or one producing another report
    assert sbom_formats({"capabilities": [{"produces_mime_types": [HARBOR_REPORT]}]}) == ()
    other = {"capabilities": [{"type": "sbom", "produces_mime_types": ["application/x"]}]}
    assert sbom_formats(other) == ()
    assert sbom_formats({"capabilities": "none"}) == ()


def test_an_sbom_report_gives_its_document_only_in_the_format_asked() -> None:
    report = {"media_type": "application/spdx+json", "sbom": {"spdxVersion": "SPDX-2.3"}}
    assert sbom_of(report, "application/spdx+json") == b'{"spdxVersion":"SPDX-2.3"}'
    with pytest.raises(ExternalScannerError):
        sbom_of(report, "application/vnd.cyclonedx+json")
    with pytest.raises(ExternalScannerError):
        sbom_of({"media_type": "application/spdx+json", "sbom": "text"}, "application/spdx+json")


def test_a_foreign_scanners_report_becomes_findings_the_policy_can_judge() -> None:
    """A Trivy-style report: no Moorage vendor attributes, severities in Harbor's words."""
    document = {
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "0.72.0"},
        "vulnerabilities": [
            {
                "id": "CVE-2023-5363",
                "package": "openssl",
                "version": "3.0.11-1~deb12u1",
                "fix_version": "3.0.11-1~deb12u2",
                "severity": "High",
                "description": "Incorrect cipher key and IV length processing",
                "links": ["https://avd.aquasec.com/nvd/cve-2023-5363"],
                "preferred_cvss": {"score_v3": 7.5, "vector_v3": "CVSS:3.1/AV:N/AC:L"},
            },
            {"id": "CVE-2024-0001", "package": "zlib", "version": "1", "severity": "weird"},
            {"package": "no-id", "version": "1", "severity": "Low"},
            "not an object",
        ],
    }
    found = findings_of(document)
    assert [f.finding.vulnerability_id for f in found] == ["CVE-2023-5363", "CVE-2024-0001"]
    first, second = (f.finding for f in found)
    assert first.severity is Severity.HIGH
    assert first.status is FixStatus.FIXED
    assert first.fixed_version == "3.0.11-1~deb12u2"
    assert first.cvss_score == 7.5
    assert second.severity is Severity.UNKNOWN
    assert second.status is FixStatus.UNFIXED
    assert second.fixed_version is None
    label = scanner_label(document)
    assert label == "api:Trivy 0.72.0"
    assert scanner_of(label) == {"name": "Trivy", "vendor": "external", "version": "0.72.0"}


def test_a_moorage_report_read_back_keeps_its_findings_whole() -> None:
    """Moorage's vendor attributes carry purl, ecosystem, fix status, platform and aliases.

    (The name a distro package was matched under is not in the report; here it is the
    package's own.)
    """
    finding = Finding(
        vulnerability_id="DSA-5532-1",
        aliases=("CVE-2023-5363",),
        package="openssl",
        version="3.0.11-1~deb12u1",
        package_type="deb",
        purl="pkg:deb/debian/openssl@3.0.11-1~deb12u1?distro=debian-12",
        ecosystem="Debian:12",
        matched_name="openssl",
        matched_version="3.0.11-1~deb12u1",
        status=FixStatus.FIXED,
        fixed_version="3.0.11-1~deb12u2",
        severity=Severity.HIGH,
        severity_source="debian",
        cvss_score=None,
        cvss_vector=None,
        summary="openssl - security update",
    )
    now = datetime(2026, 12, 3, tzinfo=UTC)
    report = ScanReport(
        1,
        "p/a",
        "sha256:" + "a" * 64,
        ScanStatus.SUCCEEDED,
        now,
        now,
        findings=(PlatformFinding("linux/amd64", finding),),
    )
    document = harbor_report(report, "application/vnd.oci.image.manifest.v1+json", now)
    (back,) = findings_of(document)
    assert back == PlatformFinding("linux/amd64", finding)


def test_vulnerabilities_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(TypeError):
        findings_of({"vulnerabilities": {"id": "x"}})
