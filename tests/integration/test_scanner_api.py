"""Harbor's Pluggable Scanner API both ways, between two real Moorage installations.

Installation A serves its scanner through the API (``scanner_api.tokens``) and holds the
vulnerability data. Installation B holds none; it delegates the scans of project ``ext``
to A (``scanner_api.delegate``), handing A a short-lived pull-only token: A's worker
pulls the image from B over HTTP, analyzes and matches it, and B's worker stores A's
report as the artifact's own. Each installation is an API and a worker process with its
own database, storage and Temporal server. The last tests register A on B as a scanner
(``/api/v1/scanners``) instead: a project's selection, the default, a disabled
registration, the ping, and a registration's precedence over the setting.
"""

from __future__ import annotations

import gzip
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.scan_rig import debian_layer
from tests.replication.rig import Site, start_site
from tests.scanning.images import LAYER_GZIP, OCI_CONFIG, OCI_MANIFEST, digest_of
from tests.scanning.osv_exports import fixture_records, write_export
from tests.services.moorage import REPO_ROOT
from tests.services.temporal import start_temporal

pytestmark = pytest.mark.integration

BOUND = 180.0
TOKEN = secrets.token_urlsafe(16)
REPORT = "application/vnd.security.vulnerability.report; version=1.1"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    started: list[Any] = []
    try:
        root_a = tmp_path_factory.mktemp("scanner-a")
        temporal_a = start_temporal(root_a / "temporal")
        started.append(temporal_a)
        osv = write_export(root_a / "osv", "Debian", fixture_records("Debian"))
        a = start_site(
            root_a,
            temporal_a.address,
            MOORAGE_SCANNER_API__TOKENS=json.dumps([TOKEN]),
            MOORAGE_SCAN__VULNDB__SOURCES=json.dumps({"Debian": str(osv)}),
        )
        started.append(a)
        loaded = subprocess.run(
            [sys.executable, "-m", "cli.main", "vulndb", "import", "--full"],
            env=a.api.env | {"PATH": "/usr/bin:/bin"},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        root_b = tmp_path_factory.mktemp("scanner-b")
        temporal_b = start_temporal(root_b / "temporal")
        started.append(temporal_b)
        b = start_site(
            root_b,
            temporal_b.address,
            MOORAGE_SCANNER_API__DELEGATE__URL=f"{a.url}/scanner-adapter",
            MOORAGE_SCANNER_API__DELEGATE__TOKEN=TOKEN,
            MOORAGE_SCANNER_API__DELEGATE__PROJECTS='["ext"]',
            MOORAGE_SCANNER_API__DELEGATE__POLL_SECONDS="0.2",
        )
        started.append(b)
        yield a, b
    finally:
        for item in reversed(started):
            item.stop()


def push(site: Site, repo: str, tag: str, layer: bytes) -> str:
    """Push a one-layer image (gzip, with its diff id); its manifest digest."""
    blob = gzip.compress(layer, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
        }
    ).encode()
    with httpx.Client(base_url=site.url, auth=site.auth, timeout=60) as client:
        for data in (config, blob):
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["location"]
            separator = "&" if "?" in location else "?"
            done = client.put(f"{location}{separator}digest={digest_of(data)}", content=data)
            assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": digest_of(config),
                    "size": len(config),
                },
                "layers": [{"mediaType": LAYER_GZIP, "digest": digest_of(blob), "size": len(blob)}],
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
    return digest_of(manifest)


def finished_summary(site: Site, project: str, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + BOUND
    with site.client() as client:
        while True:
            response = client.get(f"/api/v1/projects/{project}/scans/{digest}")
            if response.status_code == 200 and response.json()["status"] in ("succeeded", "failed"):
                found: dict[str, Any] = response.json()
                return found
            assert site.worker.popen.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, f"no finished scan of {digest}: {response.text}"
            time.sleep(0.3)


def report(site: Site, project: str, digest: str) -> dict[str, Any]:
    with site.client() as client:
        response = client.get(f"/api/v1/projects/{project}/scans/{digest}/report")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def findings(document: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (v["id"], v["package"], v["version"], v["fix_version"], v["severity"])
        for v in document["vulnerabilities"]
    }


def test_b_delegates_to_a_and_stores_what_a_finds_itself(sites: tuple[Site, Site]) -> None:
    a, b = sites
    layer = debian_layer("amd64")
    digest = push(b, "ext/app", "v1", layer)

    summary = finished_summary(b, "ext", digest)
    assert summary["status"] == "succeeded", summary["reason"]
    assert summary["scanner"] == {"name": "Moorage", "vendor": "external", "version": "1.0"}
    delegated = report(b, "ext", digest)

    # A scans the same image itself (pushed to A, scanned on push by A's own worker)
    assert push(a, "ext/app", "v1", layer) == digest
    own = finished_summary(a, "ext", digest)
    assert own["status"] == "succeeded", own["reason"]
    assert own["scanner"]["vendor"] == "Moorage"
    local = report(a, "ext", digest)

    assert findings(delegated) == findings(local)
    assert any(v[0] == "DSA-5532-1" and v[1] == "openssl" for v in findings(delegated))
    assert delegated["severity"] == local["severity"]
    by_id = {v["id"]: v for v in delegated["vulnerabilities"]}
    assert by_id["DSA-5532-1"]["vendor_attributes"]["purl"].startswith("pkg:deb/debian/")


def test_a_project_not_selected_is_scanned_by_b_itself(sites: tuple[Site, Site]) -> None:
    _, b = sites
    digest = push(b, "local/app", "v1", debian_layer("amd64", "\n"))
    summary = finished_summary(b, "local", digest)
    assert summary["status"] == "succeeded", summary["reason"]
    assert summary["scanner"] == {"name": "Moorage", "vendor": "Moorage", "version": "1.0"}
    # B holds no vulnerability data: its own scan finds nothing, A's found openssl's
    assert summary["total"] == 0


def test_the_pull_policy_reads_the_delegated_report(sites: tuple[Site, Site]) -> None:
    """The gate refuses on the delegated report; the external scanner's pull is exempt."""
    _, b = sites
    digest = push(b, "ext/gated", "v1", debian_layer("amd64"))
    summary = finished_summary(b, "ext", digest)
    assert summary["status"] == "succeeded", summary["reason"]
    worst = summary["severity"]
    assert worst is not None
    with b.client() as client:
        policy = {"scan_on_push": True, "prevent_severity": worst, "refuse_unscanned": True}
        changed = client.put("/api/v1/projects/ext/scan-policy", json=policy)
        assert changed.status_code in (200, 201), changed.text
        try:
            refused = client.get(
                f"/v2/ext/gated/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["errors"][0]["code"] == "DENIED"
            # the refusal names a finding's CVE alias where it has one
            worst_ids = {
                name
                for v in report(b, "ext", digest)["vulnerabilities"]
                if v["severity"] == worst
                for name in [v["id"], *v["vendor_attributes"]["aliases"]]
            }
            refused_ids = set(refused.json()["errors"][0]["detail"]["vulnerabilities"])
            assert refused_ids
            assert refused_ids <= worst_ids
            # an image pushed now is unscanned (refused to people) until A has pulled it
            later = push(b, "ext/gated", "v2", debian_layer("arm64"))
            scanned = finished_summary(b, "ext", later)
            assert scanned["status"] == "succeeded", scanned["reason"]
            assert scanned["total"] > 0
        finally:
            off = client.put("/api/v1/projects/ext/scan-policy", json={"scan_on_push": True})
            assert off.status_code in (200, 201), off.text


def test_a_served_scan_report_is_polled_until_done(sites: tuple[Site, Site]) -> None:
    """The adapter as Harbor calls it: scan request, then the report (302 until done)."""
    a, b = sites
    digest = push(b, "ext/direct", "v1", debian_layer("amd64"))
    finished_summary(b, "ext", digest)
    with b.client() as client:
        token = client.get(
            "/auth/token", params={"service": "moorage", "scope": "repository:ext/direct:pull"}
        )
    assert token.status_code == 200, token.text
    bearer = token.json()["token"]
    body = {
        "registry": {"url": b.url, "authorization": f"Bearer {bearer}"},
        "artifact": {"repository": "ext/direct", "digest": digest, "mime_type": OCI_MANIFEST},
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"{a.url}/scanner-adapter/api/v1", timeout=60) as client:
        accepted = client.post("/scan", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        scan_id = accepted.json()["id"]
        deadline = time.monotonic() + BOUND
        while True:
            polled = client.get(f"/scan/{scan_id}/report", headers=headers | {"Accept": REPORT})
            if polled.status_code != 302:
                break
            assert int(polled.headers["refresh-after"]) >= 1
            assert time.monotonic() < deadline, "the served scan did not finish"
            time.sleep(0.3)
    assert polled.status_code == 200, polled.text
    assert polled.headers["content-type"].startswith(
        "application/vnd.security.vulnerability.report"
    )
    document = polled.json()
    assert document["artifact"]["digest"] == digest
    assert document["scanner"]["name"] == "Moorage"
    assert findings(document) == findings(report(b, "ext", digest))


SCANNERS = "/api/v1/scanners"
#: Nothing listens on port 1 of loopback.
DEAD = "http://127.0.0.1:1/scanner-adapter"


def _registration(a: Site, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"{a.url}/scanner-adapter",
        "auth": "X-ScannerAdapter-API-Key",
        "access_credential": TOKEN,
        **extra,
    }


def _new_project(client: httpx.Client, name: str) -> None:
    created = client.post("/api/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text


def test_the_ping_asks_the_real_adapter(sites: tuple[Site, Site]) -> None:
    a, b = sites
    with b.client() as client:
        created = client.post(SCANNERS, json=_registration(a, "pinged"))
        assert created.status_code == 201, created.text
        wrong = client.post(SCANNERS, json=_registration(a, "wrong-key", access_credential="no"))
        assert wrong.status_code == 201, wrong.text
        dead = client.post(SCANNERS, json={"name": "dead", "url": DEAD})
        assert dead.status_code == 201, dead.text
        try:
            pinged = client.post(f"{SCANNERS}/pinged/ping")
            assert pinged.status_code == 200, pinged.text
            found = pinged.json()
            assert (found["name"], found["vendor"]) == ("Moorage", "Moorage")
            assert found["capabilities"][0]["type"] == "vulnerability"
            assert REPORT in found["capabilities"][0]["produces_mime_types"]

            refused = client.post(f"{SCANNERS}/wrong-key/ping")
            assert refused.status_code == 502, refused.text
            assert "answered 401" in refused.json()["title"]
            unreachable = client.post(f"{SCANNERS}/dead/ping")
            assert unreachable.status_code == 502, unreachable.text
            assert unreachable.headers["content-type"].startswith("application/problem+json")
            assert "dead" in unreachable.json()["title"]
            assert TOKEN not in refused.text + unreachable.text + client.get(SCANNERS).text
        finally:
            for name in ("pinged", "wrong-key", "dead"):
                assert client.delete(f"{SCANNERS}/{name}").status_code == 204


def test_a_registration_sends_a_projects_scans_to_the_adapter(sites: tuple[Site, Site]) -> None:
    """Not the setting: project ``reg`` is not among ``scanner_api.delegate.projects``."""
    a, b = sites
    with b.client() as client:
        created = client.post(SCANNERS, json=_registration(a, "moorage-a"))
        assert created.status_code == 201, created.text
        _new_project(client, "reg")
        selected = client.put("/api/v1/projects/reg/scanner", json={"scanner": "moorage-a"})
        assert selected.status_code == 200, selected.text
    try:
        digest = push(b, "reg/app", "v1", debian_layer("amd64"))
        summary = finished_summary(b, "reg", digest)
        assert summary["status"] == "succeeded", summary["reason"]
        assert summary["scanner"] == {"name": "Moorage", "vendor": "external", "version": "1.0"}
        stored = report(b, "reg", digest)
        assert any(v[0] == "DSA-5532-1" and v[1] == "openssl" for v in findings(stored))

        # disabled, it is not used: no default, and the setting does not cover 'reg'
        with b.client() as client:
            off = client.put(
                f"{SCANNERS}/moorage-a",
                json=_registration(a, "moorage-a")
                | {
                    "access_credential": None,
                    "disabled": True,
                },
            )
            assert off.status_code == 200, off.text
            assert off.json()["has_access_credential"] is True
        local = push(b, "reg/app", "v2", debian_layer("amd64", "\n"))
        own = finished_summary(b, "reg", local)
        assert own["status"] == "succeeded", own["reason"]
        assert own["scanner"]["vendor"] == "Moorage"
        assert own["total"] == 0
    finally:
        with b.client() as client:
            client.put("/api/v1/projects/reg/scanner", json={"scanner": None})
            assert client.delete(f"{SCANNERS}/moorage-a").status_code == 204


def test_the_default_registration_scans_projects_without_a_selection(
    sites: tuple[Site, Site],
) -> None:
    a, b = sites
    with b.client() as client:
        body = _registration(a, "default-a", is_default=True)
        created = client.post(SCANNERS, json=body)
        assert created.status_code == 201, created.text
        _new_project(client, "dflt")
        effective = client.get("/api/v1/projects/dflt/scanner").json()
        assert effective == {"scanner": None, "effective": "default-a"}
    try:
        digest = push(b, "dflt/app", "v1", debian_layer("arm64"))
        summary = finished_summary(b, "dflt", digest)
        assert summary["status"] == "succeeded", summary["reason"]
        assert summary["scanner"]["vendor"] == "external"
        assert summary["total"] > 0
    finally:
        with b.client() as client:
            assert client.delete(f"{SCANNERS}/default-a").status_code == 204


def test_a_registration_takes_precedence_over_the_setting(sites: tuple[Site, Site]) -> None:
    """Project ``ext`` is the setting's; selecting a dead registration makes its scan fail."""
    _, b = sites
    with b.client() as client:
        created = client.post(SCANNERS, json={"name": "nowhere", "url": DEAD})
        assert created.status_code == 201, created.text
        selected = client.put("/api/v1/projects/ext/scanner", json={"scanner": "nowhere"})
        assert selected.status_code == 200, selected.text
    try:
        digest = push(b, "ext/precedence", "v1", debian_layer("amd64", "\n\n"))
        summary = finished_summary(b, "ext", digest)
        assert summary["status"] == "failed"
        assert summary["reason"]
    finally:
        with b.client() as client:
            client.put("/api/v1/projects/ext/scanner", json={"scanner": None})
            assert client.delete(f"{SCANNERS}/nowhere").status_code == 204
