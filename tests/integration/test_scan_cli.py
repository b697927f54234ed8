"""``moorage vulndb``/``moorage scan`` and real clients against running Moorage processes.

``moorage api`` and ``moorage worker`` run as processes of their own; the data is loaded
with ``moorage vulndb import``; ``moorage scan run --wait`` follows a scan to its table;
``crane`` and ``skopeo`` show the pull policy's refusal (the CVEs and how to allowlist
them) and pull the same image after an allowlist entry; ``oras`` discovers and pulls the
SBOMs of an image and of a multi-platform index.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from core.scan_sbom import CYCLONEDX, SPDX
from tests.api.oci import OCIClient
from tests.clients.commands import ClientHome, make_client_home, run
from tests.integration.scan_rig import ScanRig, debian_layer
from tests.scanning.osv_exports import fixture_records, write_export
from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


@dataclass
class Installation:
    server: MoorageServer
    worker: ManagedProcess
    env: dict[str, str]
    oci: OCIClient
    home: ClientHome

    def cli(self, *args: str, check: bool = True) -> str:
        done = run([sys.executable, "-m", "cli.main", *args], env=self.env, cwd=REPO_ROOT,
                   check=check)  # fmt: skip
        return done.stdout + done.stderr

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        auth = (self.server.admin_username, self.server.admin_password)
        return httpx.request(method, self.server.url + path, auth=auth, timeout=30, **kwargs)  # type: ignore[arg-type]


def _status(inst: Installation, repo: str) -> int:
    url = f"{inst.server.url}/v2/{repo}/manifests/v1"
    # NOTE: a fresh connection each time, so the checks reach every API server process
    return httpx.get(url, headers=inst.oci.headers(repo, "pull"), timeout=30).status_code


def _everywhere(inst: Installation, repo: str, status: int) -> bool:
    """Whether ten answers in a row (over fresh connections) have ``status``."""
    return all(_status(inst, repo) == status for _ in range(10))


def _until(check: Callable[[], bool], bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


@pytest.fixture
def installation(tmp_path: Path, temporal_server: TemporalServer) -> Iterator[Installation]:
    settings = {
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_STORAGE": "filesystem",
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.2",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
        "MOORAGE_SCAN__POLICY_CACHE_SECONDS": "0.5",
    }
    server = start_moorage(tmp_path / "api", settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= settings | {"PYTHONUNBUFFERED": "1", "MOORAGE_URL": server.url}
    env |= {"MOORAGE_USERNAME": server.admin_username, "MOORAGE_PASSWORD": server.admin_password}
    worker = spawn("moorage worker", [sys.executable, "-m", "cli.main", "worker"],
                   log_path=tmp_path / "worker.log", env=env, cwd=REPO_ROOT)  # fmt: skip
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Installation(
            server, worker, env, OCIClient(http, server.admin_password),
            make_client_home(tmp_path / "home"),
        )  # fmt: skip
    finally:
        http.close()
        worker.stop()
        server.stop()


def _sboms_with_oras(inst: Installation, oras: str, repo: str, digest: str, tmp: Path) -> None:
    """``oras discover`` lists both SBOMs of the image, ``oras pull`` fetches them."""
    referrers = f"/v2/{repo}/referrers/{digest}"
    _until(lambda: len(inst.oci.request("GET", referrers, repo).json()["manifests"]) == 2)
    env = inst.home.env()
    config = str(inst.home.oras_config)
    run([oras, "login", "--plain-http", "--registry-config", config, "-u",
         inst.server.admin_username, "--password-stdin", inst.server.host_port],
        env=env, stdin=inst.server.admin_password)  # fmt: skip
    image = f"{inst.server.host_port}/{repo}@{digest}"
    common = ["--plain-http", "--registry-config", config]
    found = run([oras, "discover", *common, "--format", "json", image], env=env).stdout
    listed = {r["artifactType"]: r["digest"] for r in json.loads(found)["referrers"]}
    assert sorted(listed) == ["application/spdx+json", "application/vnd.cyclonedx+json"]
    only = run([oras, "discover", *common, "--format", "json", "--artifact-type",
                "application/spdx+json", image], env=env).stdout  # fmt: skip
    assert [r["artifactType"] for r in json.loads(only)["referrers"]] == ["application/spdx+json"]
    for media_type, name in [("application/spdx+json", "sbom.spdx.json"),
                             ("application/vnd.cyclonedx+json", "sbom.cdx.json")]:  # fmt: skip
        out = tmp / media_type.replace("/", "_")
        run([oras, "pull", *common, "-o", str(out),
             f"{inst.server.host_port}/{repo}@{listed[media_type]}"], env=env)  # fmt: skip
        document = json.loads((out / name).read_text())
        assert document.get("spdxVersion") == "SPDX-2.3" or document.get("specVersion") == "1.6"


def test_scan_commands_and_a_refused_pull_through_crane_and_skopeo(
    installation: Installation, tmp_path: Path, crane: str, skopeo: str, oras: str
) -> None:
    inst = installation
    export = write_export(tmp_path / "osv", "Debian", fixture_records("Debian"))
    out = inst.cli("vulndb", "import", "-e", "Debian", "--source", str(export), "--full")
    assert "Debian: full import" in out
    project = f"cli{secrets.token_hex(3)}"
    repo = f"{project}/app"
    assert inst.admin("POST", "/api/v1/projects", json={"name": project}).status_code == 201
    policy = {"scan_on_push": False}
    assert inst.admin("PUT", f"/api/v1/projects/{project}/scan-policy", json=policy).is_success
    pusher = ScanRig.__new__(ScanRig)
    pusher.oci = inst.oci
    digest = pusher.push_image(repo, "v1", [debian_layer()])

    out = inst.cli("scan", "run", "-p", project, "--repository", repo, "--digest", digest,
                   "--wait")  # fmt: skip
    assert "scanned 1 of 1" in out
    assert "REPOSITORY" in out
    assert "succeeded" in out
    status = inst.cli("scan", "status", "-p", project)
    header, row = status.strip().splitlines()
    assert header.split() == ["REPOSITORY", "DIGEST", "STATUS", "CRIT", "HIGH", "MED", "LOW",
                              "FIXABLE", "DATA", "AGE"]  # fmt: skip
    assert row.split()[:8] == [repo, digest[7:19], "succeeded", "1", "1", "0", "1", "2"]
    report = inst.cli("scan", "report", "-p", project, digest)
    assert "3 vulnerabilities (1 Critical, 1 High, 1 Low), 2 fixable" in report
    assert any(
        line.split()[:3] == ["DSA-5532-1", "CVE-2023-5363", "High"] for line in report.splitlines()
    )

    _sboms_with_oras(inst, oras, repo, digest, tmp_path)

    gate = {"prevent_severity": "High"}
    assert inst.admin("PUT", f"/api/v1/projects/{project}/scan-policy", json=gate).is_success
    # every API server process sees the change within the policy cache's age
    _until(lambda: _everywhere(inst, repo, 403))
    env = inst.home.env()
    reference = f"{inst.server.host_port}/{repo}:v1"
    run([crane, "auth", "login", inst.server.host_port, "-u", inst.server.admin_username,
         "--password-stdin"], env=env, stdin=inst.server.admin_password)  # fmt: skip
    refused = run([crane, "--insecure", "manifest", reference], env=env, check=False)
    assert refused.returncode != 0
    assert "DENIED" in refused.stderr
    assert "CVE-2023-5363" in refused.stderr
    assert "CVE-2099-0001" in refused.stderr
    assert f"/api/v1/projects/{project}/scan-allowlist" in refused.stderr
    skopeo_argv = [skopeo, "--policy", str(inst.home.policy), "inspect", "--raw",
                   "--tls-verify=false", "--creds",
                   f"{inst.server.admin_username}:{inst.server.admin_password}"]  # fmt: skip
    refused = run([*skopeo_argv, f"docker://{reference}"], env=env, check=False)
    assert refused.returncode != 0
    assert "CVE-2023-5363" in refused.stderr

    items = {"items": [{"id": "CVE-2023-5363"}, {"id": "CVE-2099-0001"}]}
    assert inst.admin("PUT", f"/api/v1/projects/{project}/scan-allowlist", json=items).is_success
    _until(lambda: _everywhere(inst, repo, 200))
    pulled = run([crane, "--insecure", "manifest", reference], env=env)
    assert '"layers"' in pulled.stdout
    run([*skopeo_argv, f"docker://{reference}"], env=env)


def test_an_index_gets_sboms_of_its_own_that_oras_discovers(
    installation: Installation, tmp_path: Path, oras: str
) -> None:
    """A scanned index gets a CycloneDX and an SPDX referrer of its own (subject = the
    index): each platform image with its platform, digest and packages; the platform
    images keep theirs."""
    inst = installation
    repo = f"idx{secrets.token_hex(3)}/app"
    pusher = ScanRig.__new__(ScanRig)
    pusher.oci = inst.oci
    amd = pusher.push_image(repo, "amd", [debian_layer("amd64")], "amd64")
    arm = pusher.push_image(repo, "arm", [debian_layer("arm64")], "arm64")
    index = pusher.push_index(repo, "multi", [(amd, "amd64"), (arm, "arm64")])

    def attached(digest: str) -> bool:
        listed = inst.oci.request("GET", f"/v2/{repo}/referrers/{digest}", repo)
        return len(listed.json()["manifests"]) == 2  # CycloneDX and SPDX

    for digest in (index, amd, arm):
        _until(lambda d=digest: attached(d), bound=180)  # type: ignore[misc]

    env = inst.home.env()
    config = str(inst.home.oras_config)
    run([oras, "login", "--plain-http", "--registry-config", config, "-u",
         inst.server.admin_username, "--password-stdin", inst.server.host_port],
        env=env, stdin=inst.server.admin_password)  # fmt: skip
    common = ["--plain-http", "--registry-config", config]
    image = f"{inst.server.host_port}/{repo}@{index}"
    found = run([oras, "discover", *common, "--format", "json", image], env=env).stdout
    listed = {r["artifactType"]: r["digest"] for r in json.loads(found)["referrers"]}
    assert sorted(listed) == [SPDX, CYCLONEDX]
    documents = {}
    for media_type, name in [(SPDX, "sbom.spdx.json"), (CYCLONEDX, "sbom.cdx.json")]:
        out = tmp_path / media_type.replace("/", "_")
        run([oras, "pull", *common, "-o", str(out),
             f"{inst.server.host_port}/{repo}@{listed[media_type]}"], env=env)  # fmt: skip
        documents[media_type] = json.loads((out / name).read_text())
        manifest = inst.oci.request("GET", f"/v2/{repo}/manifests/{listed[media_type]}", repo)
        assert manifest.json()["subject"]["digest"] == index

    cdx = documents[CYCLONEDX]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(cdx)) is None
    assert cdx["metadata"]["component"]["version"] == index
    images = {c["version"]: c for c in cdx["components"]}
    assert set(images) == {amd, arm}
    assert {p["value"] for p in images[amd]["properties"]} == {"linux/amd64"}
    assert {p["value"] for p in images[arm]["properties"]} == {"linux/arm64"}
    for component in images.values():
        purls = {c["purl"] for c in component["components"]}
        assert any(p.startswith("pkg:deb/debian/openssl@3.0.11-1~deb12u1") for p in purls)
    dependencies = {d["ref"]: set(d.get("dependsOn", [])) for d in cdx["dependencies"]}
    assert dependencies[index] == {amd, arm}

    spdx = documents[SPDX]
    path = tmp_path / "index.spdx.json"
    path.write_text(json.dumps(spdx))
    assert validate_full_spdx_document(json_parser.parse_from_file(str(path))) == []
    by_id = {p["SPDXID"]: p for p in spdx["packages"]}
    contains = [
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in spdx["relationships"]
        if r["relationshipType"] == "CONTAINS"
    ]
    members = [by_id[c] for p, c in contains if p == "SPDXRef-Index"]
    assert {m["versionInfo"] for m in members} == {amd, arm}
    assert {m["comment"] for m in members} == {"platform: linux/amd64", "platform: linux/arm64"}
    for member in members:
        names = {by_id[c]["name"] for p, c in contains if p == member["SPDXID"]}
        assert names == {"openssl", "libssl3"}
