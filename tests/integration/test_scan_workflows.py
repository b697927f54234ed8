"""Scans as Temporal workflows against real worker processes (SQLite and PostgreSQL).

On push (the event fan-out's scan subscriber), per platform of an index, findable by
project, repository and digest, on demand for a project with bounded concurrency, a
re-match after a data update that reads no layer, and a worker killed mid-scan.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.json import json_parser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from temporalio.client import ScheduleActionStartWorkflow

from activities.search_attributes import search_values, typed_search_attributes
from cli.schedules import VULNDB_SCHEDULE_ID
from core.digests import Digest
from core.scan_jobs import (
    REMATCH_WORKFLOW,
    SCAN_ANALYZE,
    SCAN_MANY_WORKFLOW,
    SCAN_MATCH,
    SCAN_SBOM,
    SCAN_WORKFLOW,
    RematchInput,
    ScanManyInput,
)
from core.scan_records import ScanPolicy, ScanStatus, ScanTarget
from core.scan_sbom import CYCLONEDX, SPDX
from storage.db.scans import INVENTORY, REPORT
from tests.api.oci import digest_of, unique_project
from tests.conftest import BACKENDS
from tests.integration.scan_rig import ScanRig, debian_layer, run_async, scan_rig
from tests.scanning.osv_exports import fixture_records, write_export
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_server: TemporalServer
) -> Iterator[ScanRig]:
    with scan_rig(str(request.param), tmp_path, temporal_server, request) as rig:
        rig.load_osv("Debian", fixture_records("Debian"))
        yield rig


def _ids(report) -> set[str]:
    return {item.finding.vulnerability_id for item in report.findings}


def _rows(rig: ScanRig, table, project_id: int, digest: str) -> int:
    with rig.store._engines.read.connect() as connection:
        where = (table.c.project_id == project_id) & (table.c.digest == digest)
        return len(connection.execute(table.select().where(where)).all())


def test_a_pushed_image_and_index_are_scanned_per_platform_and_findable(rig: ScanRig) -> None:
    rig.spawn_worker()
    project = unique_project()
    repo = f"{project}/app"
    amd = rig.push_image(repo, "amd", [debian_layer("amd64")], "amd64")
    arm = rig.push_image(repo, "arm", [debian_layer("arm64")], "arm64")
    index = rig.push_index(repo, "multi", [(amd, "amd64"), (arm, "arm64")])

    report = rig.wait_report(project, amd)
    assert report.status is ScanStatus.SUCCEEDED, report.reason
    assert "DSA-5532-1" in _ids(report)
    dsa = next(i.finding for i in report.findings if i.finding.vulnerability_id == "DSA-5532-1")
    assert dsa.fixed_version == "3.0.11-1~deb12u2"
    assert "CVE-2023-5363" in dsa.aliases
    assert report.counts()[str(dsa.severity)] >= 1
    assert report.fixable() >= 1

    combined = rig.wait_report(project, index)
    assert combined.status is ScanStatus.SUCCEEDED, combined.reason
    assert set(combined.platforms) == {"linux/amd64", "linux/arm64"}
    _check_sboms(rig, repo, amd)
    _check_sboms(rig, repo, arm)
    per_platform = {(i.platform, i.finding.vulnerability_id) for i in combined.findings}
    assert ("linux/amd64", "DSA-5532-1") in per_platform
    assert ("linux/arm64", "DSA-5532-1") in per_platform

    query = " AND ".join(
        f'{name} = "{value}"'
        for name, value in search_values(project=project, repository=repo, digest=index).items()
    )
    found = rig.find(query)
    assert {kind for kind, _ in found} == {SCAN_WORKFLOW}


def test_a_project_scanned_on_demand_with_bounded_concurrency(rig: ScanRig) -> None:
    project = unique_project()
    repo = f"{project}/app"
    first = rig.push_image(repo, "one", [debian_layer()])
    project_id = rig.project_id(project)
    rig.store.set_policy(ScanPolicy(project_id, scan_on_push=False))
    others = [rig.push_image(repo, f"t{n}", [debian_layer(extra=f"\n# {n}\n")]) for n in range(3)]
    rig.spawn_worker()
    run_id = f"scan-many-{project}"
    rig.start(SCAN_MANY_WORKFLOW, ScanManyInput(project_id, concurrency=2), run_id)
    assert rig.result(run_id) == 4
    for digest in [first, *others]:
        assert rig.wait_report(project, digest).status is ScanStatus.SUCCEEDED
        assert _rows(rig, REPORT, project_id, digest) == 1


def test_a_rematch_after_a_data_update_reads_no_layer(rig: ScanRig) -> None:
    project = unique_project()
    repo = f"{project}/app"
    old = [r for r in fixture_records("Debian") if r["id"] != "DSA-5532-1"]
    rig.load_osv("Debian", old)
    rig.spawn_worker()
    layer = debian_layer()
    digest = rig.push_image(repo, "v1", [layer])
    before = rig.wait_report(project, digest)
    assert "DSA-5532-1" not in _ids(before)

    # the layers are gone from the blob store: a re-match must not need them
    registry = rig.registry
    with registry.metadata.read() as session:
        tenant = session.projects.get(project).storage_id
    registry.store.delete_blob(tenant, Digest.parse(digest_of(gzip.compress(layer, mtime=0))))

    rig.load_osv("Debian", fixture_records("Debian"))
    rig.start(REMATCH_WORKFLOW, RematchInput(), f"scan-rematch-{project}")
    assert rig.result(f"scan-rematch-{project}") >= 1
    after = rig.store.report(rig.project_id(project), digest)
    assert after is not None
    assert after.status is ScanStatus.SUCCEEDED, after.reason
    assert "DSA-5532-1" in _ids(after)


def _sboms(rig: ScanRig, repo: str, digest: str) -> dict[str, list[dict]]:
    """The SBOM referrers of ``digest`` by artifact type, each with its document."""
    response = rig.oci.request("GET", f"/v2/{repo}/referrers/{digest}", repo)
    assert response.status_code == 200, response.text
    found: dict[str, list[dict]] = {}
    for descriptor in response.json()["manifests"]:
        got = rig.oci.request("GET", f"/v2/{repo}/manifests/{descriptor['digest']}", repo)
        manifest = got.json()
        assert manifest["subject"]["digest"] == digest
        assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        (layer,) = manifest["layers"]
        blob = rig.oci.request("GET", f"/v2/{repo}/blobs/{layer['digest']}", repo)
        found.setdefault(descriptor["artifactType"], []).append(blob.json())
    return found


def _check_sboms(rig: ScanRig, repo: str, digest: str) -> None:
    """One CycloneDX 1.6 and one SPDX 2.3 document, each valid for its library."""
    deadline = time.monotonic() + 120
    while len(found := _sboms(rig, repo, digest)) < 2:  # attached after the report
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert sorted(found) == sorted([CYCLONEDX, SPDX])
    (cdx,) = found[CYCLONEDX]
    (spdx_doc,) = found[SPDX]
    assert cdx["specVersion"] == "1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(cdx)) is None
    purls = {c["purl"] for c in cdx["components"]}
    assert any(p.startswith("pkg:deb/debian/openssl@3.0.11-1~deb12u1") for p in purls)
    assert spdx_doc["spdxVersion"] == "SPDX-2.3"
    parsed = json_parser.parse_from_file(_write(rig, spdx_doc))
    assert validate_full_spdx_document(parsed) == []
    names = {p["name"] for p in spdx_doc["packages"]}
    assert {"openssl", "libssl3"} <= names


def _write(rig: ScanRig, document: dict) -> str:
    path = rig.root / f"doc-{len(list(rig.root.glob('doc-*')))}.spdx.json"
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize("activity", [SCAN_ANALYZE, SCAN_MATCH, SCAN_SBOM])
def test_a_worker_killed_during_a_scan_resumes_into_exactly_one_report(
    rig: ScanRig, activity: str
) -> None:
    project = unique_project()
    repo = f"{project}/app"
    digest = rig.push_image(repo, "v1", [debian_layer()])
    project_id = rig.project_id(project)
    target = ScanTarget(project_id, project, repo, digest)
    workflow_id = f"scan-{project_id}-{digest}-crash"
    marker = rig.root / "stalled.json"
    faulty = rig.spawn_worker(
        [
            sys.executable,
            "-m",
            "tests.services.faulty_worker",
            "--activity",
            activity,
            "--when",
            "after",
            "--marker",
            str(marker),
            "--workflow-id",
            workflow_id,
        ],
        name="faulty worker",
    )
    search = search_values(project=project, repository=repo, digest=digest)
    rig.start(SCAN_WORKFLOW, target, workflow_id, search_attributes=typed_search_attributes(search))
    faulty.wait_until(marker.exists, timeout=180, what=f"{activity} stalls")
    faulty.popen.kill()  # kill -9 of this PID only
    faulty.popen.wait(timeout=30)
    faulty.stop()

    rig.spawn_worker()
    assert rig.result(workflow_id) == str(ScanStatus.SUCCEEDED)
    report = rig.wait_report(project, digest)
    assert "DSA-5532-1" in _ids(report)
    assert _rows(rig, REPORT, project_id, digest) == 1
    assert _rows(rig, INVENTORY, project_id, digest) == 1
    _check_sboms(rig, repo, digest)


def _collect_garbage(rig: ScanRig) -> None:
    admin = ("admin", rig.oci.password)
    body = {"dry_run": False, "delete_untagged": True, "review_delay_seconds": 0}
    started = rig.oci.client.post("/api/v1/system/gc", json=body, auth=admin)
    assert started.status_code == 202, started.text
    run_url = f"/api/v1/system/gc/{started.json()['id']}"
    deadline = time.monotonic() + 180
    while (state := rig.oci.client.get(run_url, auth=admin).json()["state"]) != "completed":
        assert state != "failed"
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_sboms_follow_their_subject_when_it_is_deleted_and_collected(rig: ScanRig) -> None:
    rig.spawn_worker()
    project = unique_project()
    repo = f"{project}/app"
    digest = rig.push_image(repo, "v1", [debian_layer()])
    _check_sboms(rig, repo, digest)
    listed = rig.oci.request("GET", f"/v2/{repo}/referrers/{digest}", repo).json()["manifests"]
    sboms = [d["digest"] for d in listed]

    _collect_garbage(rig)  # untagged, but their subject is stored: the SBOMs stay
    for sbom in sboms:
        assert rig.oci.request("GET", f"/v2/{repo}/manifests/{sbom}", repo).status_code == 200

    deleted = rig.oci.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo)
    assert deleted.status_code == 202, deleted.text
    _collect_garbage(rig)
    for sbom in sboms:
        gone = rig.oci.request("GET", f"/v2/{repo}/manifests/{sbom}", repo)
        assert gone.status_code == 404, sbom


def test_the_osv_import_runs_on_its_schedule_and_rematches_the_reports(rig: ScanRig) -> None:
    project = unique_project()
    repo = f"{project}/app"
    rig.load_osv("Debian", [r for r in fixture_records("Debian") if r["id"] != "DSA-5532-1"])
    # the export grew by the DSA, modified after everything imported before (incremental)
    records = fixture_records("Debian")
    for record in records:
        if record["id"] == "DSA-5532-1":
            record["modified"] = "2026-12-01T00:00:00Z"
    newer = write_export(rig.root / "osv-newer", "Debian", records)
    sources = json.dumps({"Debian": str(newer)})
    rig.spawn_worker(extra_env={"MOORAGE_SCAN__VULNDB__SOURCES": sources})
    digest = rig.push_image(repo, "v1", [debian_layer()])
    assert "DSA-5532-1" not in _ids(rig.wait_report(project, digest))

    queue = rig.settings.temporal.task_queue

    async def trigger() -> tuple[str, float]:
        client = await rig.client()
        handle = client.get_schedule_handle(VULNDB_SCHEDULE_ID)
        described = await handle.describe()
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        (interval,) = described.schedule.spec.intervals
        await handle.trigger()
        return action.task_queue, interval.every.total_seconds()

    assert run_async(trigger) == (queue, 6 * 3600)
    query = f'WorkflowType = "VulnDbImportWorkflow" AND TaskQueue = "{queue}"'
    ((_, run_id),) = rig.find(query)
    outcome = rig.result(run_id)
    assert outcome["changed"] >= 1
    assert outcome["failed"] == []
    report = rig.wait_report(project, digest, lambda r: "DSA-5532-1" in _ids(r))
    assert report.status is ScanStatus.SUCCEEDED
