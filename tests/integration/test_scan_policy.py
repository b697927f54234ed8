"""Scan reports over the API and the vulnerability pull policy (SQLite and PostgreSQL).

A real worker process scans what the test pushes; the API answers summaries, Harbor's
report document and filtered lists; a project's policy refuses pulls of vulnerable,
unscanned or failed images with an OCI error naming the CVEs and how to allowlist them,
until an allowlist entry (project or system, with expiry) lets them through; artifacts
that are not images (SBOMs, signatures, attestations) are never refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.scan_records import ScanPolicy
from core.scan_reports import HARBOR_REPORT
from tests.api.oci import digest_of, unique_project
from tests.conftest import BACKENDS
from tests.integration.scan_rig import ScanRig, debian_layer, scan_rig
from tests.scanning.osv_exports import fixture_records
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_server: TemporalServer
) -> Iterator[ScanRig]:
    with scan_rig(str(request.param), tmp_path, temporal_server, request) as rig:
        rig.load_osv("Debian", fixture_records("Debian"))
        rig.spawn_worker()
        yield rig


def _admin(rig: ScanRig, method: str, url: str, **kwargs: Any) -> httpx.Response:
    return rig.oci.client.request(method, url, auth=("admin", rig.oci.password), **kwargs)


def _pull(rig: ScanRig, repo: str, reference: str) -> httpx.Response:
    return rig.oci.request(
        "GET",
        f"/v2/{repo}/manifests/{reference}",
        repo,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )


def _sbom(rig: ScanRig, repo: str, subject: str) -> str:
    """An SPDX document attached to ``subject`` the way ``oras attach`` does."""
    document = json.dumps({"spdxVersion": "SPDX-2.3", "name": "x"}).encode()
    rig.oci.push_blob(repo, b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": EMPTY, "digest": digest_of(b"{}"), "size": 2},
        "layers": [
            {
                "mediaType": "application/spdx+json",
                "digest": rig.oci.push_blob(repo, document),
                "size": len(document),
            }
        ],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": subject,
            "size": len(_pull(rig, repo, subject).content),
        },
    }
    payload = json.dumps(manifest).encode()
    response = rig.oci.put_manifest(repo, digest_of(payload), payload)
    assert response.status_code == 201, response.text
    return digest_of(payload)


def test_summary_harbor_report_and_filtered_listing(rig: ScanRig) -> None:
    project = unique_project()
    digest = rig.push_image(f"{project}/app", "v1", [debian_layer()])
    clean = rig.push_image(f"{project}/tools", "v1", [b"\0" * 1024])
    rig.wait_report(project, digest)
    rig.wait_report(project, clean)

    summary = _admin(rig, "GET", f"/api/v1/projects/{project}/scans/{digest}")
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["status"] == "succeeded"
    assert body["severity"] == "Critical"
    assert body["counts"]["Critical"] == 1
    assert body["counts"]["High"] == 1
    assert body["counts"]["Low"] == 1
    assert body["total"] == 3
    assert body["fixable"] == 2
    assert body["scanner"]["name"] == "Moorage"
    assert body["data_age_seconds"] is not None

    report = _admin(rig, "GET", f"/api/v1/projects/{project}/scans/{digest}/report")
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith(HARBOR_REPORT)
    document = report.json()
    assert document["artifact"]["digest"] == digest
    assert document["severity"] == "Critical"
    dsa = [v for v in document["vulnerabilities"] if v["id"] == "DSA-5532-1"]
    assert {v["package"] for v in dsa} == {"openssl", "libssl3"}
    assert {v["fix_version"] for v in dsa} == {"3.0.11-1~deb12u2"}
    assert dsa[0]["preferred_cvss"]["vector_v3"].startswith("CVSS:3.1/")
    assert "CVE-2023-5363" in dsa[0]["vendor_attributes"]["aliases"]

    listing = _admin(rig, "GET", f"/api/v1/projects/{project}/scans", params={"limit": 1})
    assert listing.status_code == 200, listing.text
    assert len(listing.json()["items"]) == 1
    assert listing.json()["next"] is not None
    critical = _admin(
        rig, "GET", f"/api/v1/projects/{project}/scans", params={"severity": "Critical"}
    )
    assert [i["digest"] for i in critical.json()["items"]] == [digest]
    tools = _admin(
        rig, "GET", f"/api/v1/projects/{project}/scans", params={"repository": f"{project}/tools"}
    )
    assert [i["digest"] for i in tools.json()["items"]] == [clean]
    bad = _admin(rig, "GET", f"/api/v1/projects/{project}/scans", params={"severity": "Bad"})
    assert bad.status_code == 400


def test_a_vulnerable_image_is_refused_until_allowlisted(rig: ScanRig) -> None:
    project = unique_project()
    repo = f"{project}/app"
    digest = rig.push_image(repo, "v1", [debian_layer()])
    rig.wait_report(project, digest)
    sbom = _sbom(rig, repo, digest)
    assert _pull(rig, repo, "v1").status_code == 200  # no policy yet

    policy = {"prevent_severity": "High"}
    response = _admin(rig, "PUT", f"/api/v1/projects/{project}/scan-policy", json=policy)
    assert response.status_code == 200, response.text
    refused = _pull(rig, repo, "v1")
    assert refused.status_code == 403
    (error,) = refused.json()["errors"]
    assert error["code"] == "DENIED"
    assert "CVE-2099-0001" in error["message"]
    assert "CVE-2023-5363" in error["message"]
    assert "CVE-2099-0002" not in error["message"]  # Low: below the threshold
    assert f"/api/v1/projects/{project}/scan-allowlist" in error["message"]
    assert set(error["detail"]["vulnerabilities"]) == {"CVE-2099-0001", "CVE-2023-5363"}
    assert _pull(rig, repo, sbom).status_code == 200  # SBOMs are exempt

    # one CVE on the project's list, the other on the system's (by an alias of the DSA)
    items = {"items": [{"id": "CVE-2099-0001", "comment": "accepted"}]}
    assert _admin(rig, "PUT", f"/api/v1/projects/{project}/scan-allowlist", json=items).is_success
    still = _pull(rig, repo, digest)
    assert still.status_code == 403
    assert still.json()["errors"][0]["detail"]["vulnerabilities"] == ["CVE-2023-5363"]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    system = {"items": [{"id": "CVE-2023-5363", "expires_at": later}]}
    assert _admin(rig, "PUT", "/api/v1/scan-allowlist", json=system).is_success
    assert _pull(rig, repo, "v1").status_code == 200

    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    system = {"items": [{"id": "CVE-2023-5363", "expires_at": expired}]}
    answer = _admin(rig, "PUT", "/api/v1/scan-allowlist", json=system)
    assert answer.json()["expired"] == ["CVE-2023-5363"]
    assert _pull(rig, repo, "v1").status_code == 403
    assert _admin(rig, "PUT", "/api/v1/scan-allowlist", json={"items": []}).is_success


def test_unscanned_and_failed_images_are_refused_when_the_project_says_so(rig: ScanRig) -> None:
    project = unique_project()
    repo = f"{project}/app"
    first = rig.push_image(repo, "first", [debian_layer()])
    project_id = rig.project_id(project)
    rig.wait_report(project, first)
    policy = {"scan_on_push": False, "refuse_unscanned": True}
    assert _admin(rig, "PUT", f"/api/v1/projects/{project}/scan-policy", json=policy).is_success
    assert rig.store.policy(project_id) == ScanPolicy(project_id, False, None, True)

    unscanned = rig.push_image(repo, "new", [debian_layer(extra="\n# new\n")])
    refused = _pull(rig, repo, "new")
    assert refused.status_code == 403
    assert "not been scanned" in refused.json()["errors"][0]["message"]
    assert _pull(rig, repo, "first").status_code == 200

    started = _admin(
        rig,
        "POST",
        f"/api/v1/projects/{project}/scans",
        json={"repository": repo, "digest": unscanned},
    )
    assert started.status_code == 202, started.text
    rig.result(started.json()["workflow_id"])
    assert _pull(rig, repo, "new").status_code == 200

    corrupt = rig.push_image(repo, "corrupt", [b"not a tar" * 100])
    started = _admin(
        rig,
        "POST",
        f"/api/v1/projects/{project}/scans",
        json={"repository": repo, "digest": corrupt},
    )
    assert rig.result(started.json()["workflow_id"]) == "failed"
    failed = _pull(rig, repo, "corrupt")
    assert failed.status_code == 403
    assert "scan failed" in failed.json()["errors"][0]["message"]
    summary = _admin(rig, "GET", f"/api/v1/projects/{project}/scans/{corrupt}").json()
    assert summary["status"] == "failed"
    assert summary["reason"]
