"""Harbor's Pluggable Scanner API both ways, between two real Moorage installations.

Installation A serves its scanner through the API (``scanner_api.tokens``) and holds the
vulnerability data. Installation B holds none; it delegates the scans of project ``ext``
to A (``scanner_api.delegate``), handing A a short-lived pull-only token: A's worker
pulls the image from B over HTTP, analyzes and matches it, and B's worker stores A's
report as the artifact's own. Each installation is an API and a worker process with its
own database, storage and Temporal server. A offers the ``sbom`` capability (v1.2): B
attaches A's SBOMs to the delegated images, and A answers SBOM reports as Harbor asks
for them. The last tests register A on B as a scanner
(``/api/v1/scanners``) instead: a project's selection, the default, a disabled
registration, the ping, and a registration's precedence over the setting. The very last
kill a site's worker (``kill -9``) at the served scan and at the delegated one (after it
stored the report, and while it polls).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from sqlalchemy import Table, create_engine, func, select
from temporalio.client import Client

from activities.search_attributes import DIGEST
from core.scan_jobs import ADAPTER_SCAN, SCAN_DELEGATE, SCAN_WORKFLOW, adapter_workflow_id
from core.scan_sbom import CYCLONEDX, SPDX
from storage.db.scanner_api import SCAN as SERVED
from storage.db.scans import REPORT as SCAN_REPORT
from tests.integration.scan_rig import debian_layer
from tests.replication.rig import Site, push_index, start_site
from tests.scanning.images import LAYER_GZIP, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, digest_of
from tests.scanning.osv_exports import fixture_records, write_export
from tests.services.faulty_worker import AFTER, BEFORE, DURING
from tests.services.forkserver import run_captured
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import start_temporal

pytestmark = pytest.mark.integration

BOUND = 180.0
TOKEN = secrets.token_urlsafe(16)
REPORT = "application/vnd.security.vulnerability.report; version=1.1"
T = TypeVar("T")


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
        loaded = run_captured(
            [sys.executable, "-m", "cli.main", "vulndb", "import", "--full"],
            env=a.api.env | {"PATH": "/usr/bin:/bin"},
            cwd=REPO_ROOT,
            timeout=BOUND,
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

    # A offers the sbom capability: B attached A's SBOMs, the documents A attaches itself
    taken = _referred_sboms(b, "ext/app", digest)
    attached = _referred_sboms(a, "ext/app", digest)
    assert sorted(taken) == [SPDX, CYCLONEDX]
    for media_type in (CYCLONEDX, SPDX):
        assert _timeless(taken[media_type]) == _timeless(attached[media_type])
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


# --- the sbom capability (v1.2) -------------------------------------------------------------

SBOM_REPORT = "application/vnd.security.sbom.report+json; version=1.0"


def _referred_sboms(site: Site, repository: str, digest: str) -> dict[str, dict[str, Any]]:
    """The SBOM referrers Moorage attached to ``digest`` itself, by media type (waits)."""
    deadline = time.monotonic() + BOUND
    with httpx.Client(base_url=site.url, auth=site.auth, timeout=60) as client:
        while True:
            listed = client.get(f"/v2/{repository}/referrers/{digest}")
            assert listed.status_code == 200, listed.text
            if len(listed.json()["manifests"]) >= 2:
                break
            assert time.monotonic() < deadline, listed.text
            time.sleep(0.3)
        found: dict[str, dict[str, Any]] = {}
        for descriptor in listed.json()["manifests"]:
            manifest = client.get(f"/v2/{repository}/manifests/{descriptor['digest']}").json()
            (layer,) = manifest["layers"]
            blob = client.get(f"/v2/{repository}/blobs/{layer['digest']}")
            assert descriptor["artifactType"] not in found, "one document of each type"
            assert manifest["subject"]["digest"] == digest
            found[descriptor["artifactType"]] = blob.json()
    return found


def _served_sboms(a: Site, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask A to scan as Harbor does with the sbom capability; both SBOM reports."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    wanted = {"Accept": SBOM_REPORT}
    with httpx.Client(base_url=f"{a.url}/scanner-adapter/api/v1", timeout=60) as client:
        accepted = client.post("/scan", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        url = f"/scan/{accepted.json()['id']}/report"
        deadline = time.monotonic() + BOUND
        while True:
            query = {"sbom_media_type": CYCLONEDX}
            polled = client.get(url, headers=headers | wanted, params=query)
            if polled.status_code != 302:
                break
            assert time.monotonic() < deadline, "the served scan did not finish"
            time.sleep(0.3)
        assert polled.status_code == 200, polled.text
        assert polled.headers["content-type"].startswith("application/vnd.security.sbom.report")
        spdx = client.get(url, headers=headers | wanted, params={"sbom_media_type": SPDX})
        assert spdx.status_code == 200, spdx.text
    return polled.json(), spdx.json()


def _timeless(document: dict[str, Any]) -> dict[str, Any]:
    """The document without its creation time (the scan's, not the content's)."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    copy.get("metadata", {}).pop("timestamp", None)
    copy.get("creationInfo", {}).pop("created", None)
    return copy


def _valid(document: dict[str, Any], media_type: str, root: Path) -> None:
    if media_type == CYCLONEDX:
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None
        return
    path = root / f"{secrets.token_hex(4)}.spdx.json"
    path.write_text(json.dumps(document))
    assert validate_full_spdx_document(json_parser.parse_from_file(str(path))) == []


def test_a_served_sbom_is_the_document_moorage_attaches_itself(
    sites: tuple[Site, Site], tmp_path: Path
) -> None:
    """B scans ``local`` itself and attaches SBOM referrers; A, asked through the API for
    the sbom capability of the same image, answers the same documents."""
    a, b = sites
    repository = "local/sbom"
    digest = push(b, repository, "v1", debian_layer("amd64", "\n# sbom\n"))
    own = _referred_sboms(b, repository, digest)
    capability = {
        "type": "sbom",
        "produces_mime_types": [SBOM_REPORT],
        "parameters": {"sbom_media_types": [SPDX, CYCLONEDX]},
    }
    body = _served_request(b, repository, digest) | {"enabled_capabilities": [capability]}
    cdx, spdx = _served_sboms(a, body)
    for envelope, media_type in ((cdx, CYCLONEDX), (spdx, SPDX)):
        assert envelope["media_type"] == media_type
        assert envelope["artifact"]["digest"] == digest
        assert envelope["scanner"]["name"] == "Moorage"
        _valid(envelope["sbom"], media_type, tmp_path)
        assert _timeless(envelope["sbom"]) == _timeless(own[media_type])
    purls = {c["purl"] for c in cdx["sbom"]["components"]}
    assert any(p.startswith("pkg:deb/debian/openssl@3.0.11-1~deb12u1") for p in purls)


def test_a_served_sbom_of_an_index_describes_each_platform(
    sites: tuple[Site, Site], tmp_path: Path
) -> None:
    a, b = sites
    repository = "local/sbom-multi"
    amd = push(b, repository, "amd", debian_layer("amd64", "\n# multi\n"))
    arm = push(b, repository, "arm", debian_layer("arm64", "\n# multi\n"))
    index = push_index(b.url, repository, "multi", [amd, arm], b.auth)
    body = _served_request(b, repository, index)
    body["artifact"]["mime_type"] = OCI_INDEX
    cdx, spdx = _served_sboms(a, body)  # no enabled_capabilities: every one is enabled
    _valid(cdx["sbom"], CYCLONEDX, tmp_path)
    _valid(spdx["sbom"], SPDX, tmp_path)
    assert cdx["sbom"]["metadata"]["component"]["version"] == index
    images = {c["version"]: c for c in cdx["sbom"]["components"]}
    assert set(images) == {amd, arm}
    platforms = {d: {p["value"] for p in c["properties"]} for d, c in images.items()}
    assert platforms == {amd: {"linux/amd64"}, arm: {"linux/arm64"}}
    for image in images.values():
        assert {c["name"] for c in image["components"]} == {"openssl", "libssl3"}
    contained = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in spdx["sbom"]["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    by_id = {p["SPDXID"]: p for p in spdx["sbom"]["packages"]}
    assert {by_id[c]["versionInfo"] for p, c in contained if p == "SPDXRef-Index"} == {amd, arm}


# --- workers killed with kill -9 mid-scan (last: they stop and restart the sites' workers) --


def _faulty(
    site: Site, activity: str, when: str, marker: Path, workflow_contains: str | None = None
) -> ManagedProcess:
    """The site's worker with ``activity`` made to stall (``tests.services.faulty_worker``).

    With ``workflow_contains`` (a digest), only a call of a run whose id contains it
    stalls: every scan asks the delegate step first, so another artifact's scan still
    queued would otherwise be the one stalled.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= site.env | {"MOORAGE_REPLICATION__LOCAL_URL": site.url, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "tests.services.faulty_worker", "--activity", activity]
    argv += ["--when", when, "--marker", str(marker), "--all-subscribers"]
    if workflow_contains is not None:
        argv += ["--workflow-contains", workflow_contains]
    log = site.workdir / f"faulty-{activity}-{when}.log"
    return spawn("faulty worker", argv, log_path=log, env=env, cwd=REPO_ROOT)


def _kill(worker: ManagedProcess) -> None:
    """``kill -9`` of this worker's PID only."""
    worker.popen.kill()
    worker.popen.wait(timeout=30)
    worker.stop()


def _count(site: Site, table: Table, digest: str) -> int:
    """Rows of ``table`` for ``digest`` in the site's database (SQLite in its data dir)."""
    engine = create_engine(f"sqlite:///{Path(site.env['MOORAGE_DATA_DIR']) / 'moorage.db'}")
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table).where(table.c.digest == digest)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def _temporal(site: Site, make: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
    async def go() -> T:
        client = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
        async with asyncio.timeout(BOUND):
            return await make(client)

    return asyncio.run(go())


def _result(site: Site, workflow_id: str) -> Any:
    return _temporal(site, lambda c: c.get_workflow_handle(workflow_id).result())


def _heartbeated(site: Site, workflow_id: str) -> list[Any]:
    """The details of the last heartbeat Temporal holds for the run's pending activity."""

    async def describe(client: Client) -> list[Any]:
        description = await client.get_workflow_handle(workflow_id).describe()
        for pending in description.raw_description.pending_activities:
            payloads = list(pending.heartbeat_details.payloads)
            if payloads:
                return list(await client.data_converter.decode(payloads))
        return []

    return _temporal(site, describe)


def _served_request(b: Site, repository: str, digest: str) -> dict[str, Any]:
    """A scan request as Harbor sends it: the artifact in B, with a pull token of B's."""
    with b.client() as client:
        token = client.get(
            "/auth/token", params={"service": "moorage", "scope": f"repository:{repository}:pull"}
        )
    assert token.status_code == 200, token.text
    return {
        "registry": {"url": b.url, "authorization": f"Bearer {token.json()['token']}"},
        "artifact": {"repository": repository, "digest": digest, "mime_type": OCI_MANIFEST},
    }


@pytest.mark.parametrize("when", [BEFORE, DURING])
def test_a_served_scan_whose_worker_is_killed_is_finished_by_another(
    sites: tuple[Site, Site], when: str
) -> None:
    """A's worker is killed (``kill -9``) at the served scan; another finishes it.

    ``before``: killed before it pulled anything, the report answers 302 until the next
    worker has scanned. ``during``: killed after it stored its outcome while it still
    heartbeats; the retry does not scan again (the report is the first run's).
    """
    a, b = sites
    repository = f"ext/served-{when}"
    digest = push(b, repository, "v1", debian_layer("amd64", f"\n# served {when}\n"))
    finished_summary(b, "ext", digest)  # B's own delegated scan is over: A's queue is idle
    marker = a.workdir / f"stalled-served-{when}.json"
    a.worker.stop()
    faulty = _faulty(a, ADAPTER_SCAN, when, marker)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": REPORT}
    try:
        with httpx.Client(base_url=f"{a.url}/scanner-adapter/api/v1", timeout=60) as client:
            body = _served_request(b, repository, digest)
            accepted = client.post("/scan", json=body, headers=headers)
            assert accepted.status_code == 202, accepted.text
            scan_id = accepted.json()["id"]
            faulty.wait_until(marker.exists, timeout=BOUND, what="the served scan stalls")
            held = client.get(f"/scan/{scan_id}/report", headers=headers)
            if when == BEFORE:
                assert held.status_code == 302, held.text
            else:
                assert held.status_code == 200, held.text
            _kill(faulty)
            a.restart_worker()
            assert _result(a, adapter_workflow_id(scan_id)) == "succeeded"
            done = client.get(f"/scan/{scan_id}/report", headers=headers)
            assert done.status_code == 200, done.text
            again = client.get(f"/scan/{scan_id}/report", headers=headers)
    finally:
        faulty.stop()
        if a.worker.popen.poll() is not None:
            a.restart_worker()
    document = done.json()
    assert document == again.json()
    assert document["artifact"]["digest"] == digest
    assert findings(document) == findings(report(b, "ext", digest))
    assert any(v[0] == "DSA-5532-1" for v in findings(document))
    if when == DURING:
        assert document["generated_at"] == held.json()["generated_at"]  # not scanned again
    assert _count(a, SERVED, digest) == 2  # B's delegated scan and this one, no third


def test_a_delegated_scan_whose_worker_is_killed_asks_the_scanner_once(
    sites: tuple[Site, Site],
) -> None:
    """B's worker is killed (``kill -9``) after its delegated scan stored A's report.

    The retry on another worker polls the scan it heartbeated instead of asking A again:
    A has one scan request for the image, B one report, whose findings are A's own.
    """
    a, b = sites
    layer = debian_layer("amd64", "\n# delegated crash\n")
    marker = b.workdir / "stalled-delegate.json"
    b.worker.stop()
    faulty: ManagedProcess | None = None
    try:
        # pushed while B has no worker: its scan waits for the faulty one
        digest = push(b, "ext/delegated", "v1", layer)
        faulty = _faulty(b, SCAN_DELEGATE, AFTER, marker, workflow_contains=digest)
        faulty.wait_until(marker.exists, timeout=BOUND, what="the delegated scan stalls")
        workflow_id = json.loads(marker.read_text())["workflow_id"]
        assert _count(a, SERVED, digest) == 1
        # NOTE: Temporal holds the heartbeat naming A's scan within its throttle interval
        faulty.wait_until(
            lambda: len(_heartbeated(b, workflow_id)) == 2,
            timeout=BOUND,
            what="the heartbeat naming A's scan",
            interval=0.5,
        )
        _kill(faulty)
        b.restart_worker()
        assert _result(b, workflow_id) == "succeeded"
    finally:
        if faulty is not None:
            faulty.stop()
        if b.worker.popen.poll() is not None:
            b.restart_worker()
    summary = finished_summary(b, "ext", digest)
    assert summary["status"] == "succeeded", summary["reason"]
    assert summary["scanner"]["vendor"] == "external"
    delegated = report(b, "ext", digest)
    assert _count(a, SERVED, digest) == 1  # no second scan request
    assert _count(b, SCAN_REPORT, digest) == 1
    assert sorted(_referred_sboms(b, "ext/delegated", digest)) == [SPDX, CYCLONEDX]

    assert push(a, "ext/delegated", "v1", layer) == digest
    own = finished_summary(a, "ext", digest)
    assert own["status"] == "succeeded", own["reason"]
    assert findings(delegated) == findings(report(a, "ext", digest))
    assert any(v[0] == "DSA-5532-1" for v in findings(delegated))


def _scan_run(site: Site, digest: str) -> str:
    """The id of the site's scan run of ``digest`` (found by its search attribute; waits)."""
    query = f'WorkflowType = "{SCAN_WORKFLOW}" AND {DIGEST.name} = "{digest}"'

    async def find(client: Client) -> str:
        while True:
            found = [w.id async for w in client.list_workflows(query)]
            if found:
                return found[0]
            await asyncio.sleep(0.3)

    return _temporal(site, find)


def test_a_delegated_scan_killed_while_it_polls_resumes_polling_the_same_scan(
    sites: tuple[Site, Site],
) -> None:
    """B's worker is killed (``kill -9``) while it polls A for a scan A has not run yet.

    A's worker is stopped, so A's scan stays queued (302) for as long as the test wants;
    once Temporal holds B's heartbeat naming A's scan, B's worker dies. With A's worker
    back and a new B worker, the retry polls that scan: A is asked once, B stores one
    report (A's findings) and one SBOM of each kind.
    """
    a, b = sites
    layer = debian_layer("amd64", "\n# killed mid-poll\n")
    a.worker.stop()
    try:
        digest = push(b, "ext/polled", "v1", layer)
        workflow_id = _scan_run(b, digest)
        b.worker.wait_until(
            lambda: len(_heartbeated(b, workflow_id)) == 2,
            timeout=BOUND,
            what="the heartbeat naming A's scan",
            interval=0.5,
        )
        assert _count(a, SERVED, digest) == 1
        with b.client() as client:
            running = client.get(f"/api/v1/projects/ext/scans/{digest}").json()
        assert running["status"] == "running", running
        _kill(b.worker)
    finally:
        if a.worker.popen.poll() is not None:
            a.restart_worker()
        if b.worker.popen.poll() is not None:
            b.restart_worker()
    assert _result(b, workflow_id) == "succeeded"
    summary = finished_summary(b, "ext", digest)
    assert summary["status"] == "succeeded", summary["reason"]
    assert _count(a, SERVED, digest) == 1  # polled again, not asked again
    assert _count(b, SCAN_REPORT, digest) == 1
    delegated = report(b, "ext", digest)
    assert sorted(_referred_sboms(b, "ext/polled", digest)) == [SPDX, CYCLONEDX]

    assert push(a, "ext/polled", "v1", layer) == digest
    own = finished_summary(a, "ext", digest)
    assert own["status"] == "succeeded", own["reason"]
    assert findings(delegated) == findings(report(a, "ext", digest))
