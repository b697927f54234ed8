"""CI promotions end to end: the API in process, the real worker as a process, Temporal's
dev server; copies checked byte for byte through ``/v2``.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar.testing import TestClient
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from api.app import create_app
from core.promotion import COPY_IMAGE
from core.promotion_record import RECORD_ARTIFACT_TYPE
from core.settings import Settings
from tests.api.oci import OCIClient, Pushed, digest_of, unique_project
from tests.conftest import BACKENDS
from tests.services.control_backends import control_settings, worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
BOUND = 120.0
POLLS = 2000
T = TypeVar("T")
ARTIFACT = "application/vnd.example.sbom"


@dataclass
class Rig:
    settings: Settings
    root: Path
    oci: OCIClient
    workers: list[ManagedProcess] = field(default_factory=list)

    def spawn_worker(self, argv: list[str] | None = None) -> ManagedProcess:
        argv = argv or [sys.executable, "-m", "cli.main", "worker"]
        log = self.root / f"worker-{len(self.workers)}.log"
        env = worker_env(self.settings, {"OUTBOX_POLL_SECONDS": "0.2"})
        worker = spawn("moorage worker", argv, log_path=log, env=env, cwd=REPO_ROOT)
        self.workers.append(worker)
        return worker

    def admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.oci.client.request(method, url, auth=("admin", self.oci.password), **kwargs)


@pytest.fixture
def rig(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_server: TemporalServer
) -> Iterator[Rig]:
    backend = getattr(request, "param", "sqlite-fs")
    settings = control_settings(
        backend, tmp_path, temporal_server, request, {"gc_every_seconds": 0}, label="promo"
    )
    assert settings.auth.admin_password is not None
    with TestClient(create_app(settings)) as http:
        rig = Rig(
            settings, tmp_path, OCIClient(http, settings.auth.admin_password.get_secret_value())
        )
        try:
            yield rig
        finally:
            for worker in rig.workers:
                worker.stop()


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result(timeout=BOUND + 30)


async def _client(settings: Settings) -> Client:
    return await Client.connect(settings.temporal.address, namespace=settings.temporal.namespace)


def _project(rig: Rig, *, scan_on_push: bool = False, **quota: int) -> str:
    name = unique_project()
    created = rig.admin("POST", "/api/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    # Off unless a test wants it, so that "not scanned" does not race a scan on push.
    policy = rig.admin(
        "PUT", f"/api/v1/projects/{name}/scan-policy", json={"scan_on_push": scan_on_push}
    )
    assert policy.status_code == 200, policy.text
    if quota:
        assert rig.admin("PUT", f"/api/v1/projects/{name}/quota", json=quota).status_code == 200
    return name


def _image_with_referrer(oci: OCIClient, repo: str, tag: str) -> tuple[Pushed, str, str]:
    """An image, an artifact referring to it, and a cosign-style ``.sig`` tag."""
    image = oci.push_image(repo, tag)
    sbom = oci.image(repo, layers=[b'{"sbom": "' + uuid.uuid4().hex.encode() + b'"}'])
    sbom["artifactType"] = ARTIFACT
    sbom["subject"] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": image.digest,
        "size": len(image.payload),
    }
    payload = json.dumps(sbom).encode()
    referrer = digest_of(payload)
    assert oci.put_manifest(repo, referrer, payload).status_code == 201
    signature = json.dumps(oci.image(repo)).encode()
    sig_tag = image.digest.replace(":", "-") + ".sig"
    assert oci.put_manifest(repo, sig_tag, signature).status_code == 201
    return image, referrer, digest_of(signature)


def _promote(
    rig: Rig, source: str, target: str, auth: tuple[str, str] | None = None, **gates: Any
) -> httpx.Response:
    body = {"source": source, "target": target, "gates": gates}
    auth = auth or ("admin", rig.oci.password)
    return rig.oci.client.post("/api/v1/promotions", json=body, auth=auth)


def _wait(rig: Rig, promotion_id: str, until: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        response = rig.admin("GET", f"/api/v1/promotions/{promotion_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in until:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
    raise AssertionError(f"{promotion_id} never reached {until}")


def _manifest(oci: OCIClient, repo: str, reference: str) -> httpx.Response:
    return oci.request("GET", f"/v2/{repo}/manifests/{reference}", repo)


def _referrers(oci: OCIClient, repo: str, digest: str) -> tuple[list[str], list[dict[str, Any]]]:
    """The copied referrers' digests, and the promotion records (their manifests)."""
    found = oci.request("GET", f"/v2/{repo}/referrers/{digest}", repo).json()["manifests"]
    copied = [m["digest"] for m in found if m.get("artifactType") != RECORD_ARTIFACT_TYPE]
    records = [
        json.loads(_manifest(oci, repo, m["digest"]).content)
        for m in found
        if m.get("artifactType") == RECORD_ARTIFACT_TYPE
    ]
    return copied, records


def _statement(oci: OCIClient, repo: str, record: dict[str, Any]) -> dict[str, Any]:
    layer = record["layers"][0]["digest"]
    body: dict[str, Any] = oci.request("GET", f"/v2/{repo}/blobs/{layer}", repo).json()
    return body


@pytest.mark.parametrize("rig", BACKENDS, indirect=True)
def test_promotion_copies_image_referrers_and_blobs_once(rig: Rig) -> None:
    rig.spawn_worker()
    source_project, target_project = _project(rig), _project(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    image, referrer, signature = _image_with_referrer(rig.oci, source, "rc1")

    first = _promote(rig, f"{source}:rc1", f"{target}:prod")
    assert first.status_code == 202, first.text
    done = _wait(rig, first.json()["id"], {"promoted", "refused", "failed"})
    assert done["status"] == "promoted", done
    assert done["source"] == f"{source}@{image.digest}"

    copied = _manifest(rig.oci, target, "prod")
    assert copied.status_code == 200
    assert copied.content == image.payload  # same bytes, same digest
    for blob in image.blobs:
        got = rig.oci.request("GET", f"/v2/{target}/blobs/{blob}", target)
        src = rig.oci.request("GET", f"/v2/{source}/blobs/{blob}", source)
        assert (got.status_code, got.content) == (200, src.content)
    copied_referrers, records = _referrers(rig.oci, target, image.digest)
    assert copied_referrers == [referrer]
    assert len(records) == 1  # the promotion record, a verification summary
    statement = _statement(rig.oci, target, records[0])
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert statement["subject"] == [{"name": target, "digest": {"sha256": image.digest[7:]}}]
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["predicate"]["moorage"]["promotion"] == first.json()["id"]
    sig_tag = image.digest.replace(":", "-") + ".sig"
    assert digest_of(_manifest(rig.oci, target, sig_tag).content) == signature

    # The same request again (by digest this time) is the same promotion: nothing new runs.
    again = _promote(rig, f"{source}@{image.digest}", f"{target}:prod")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "promoted"

    async def runs() -> list[str]:
        client = await _client(rig.settings)
        query = f'WorkflowId = "{first.json()["id"]}" AND MoorageDigest = "{image.digest}"'
        query += f' AND MoorageRepository = "{target}" AND MoorageProject = "{target_project}"'
        async with asyncio.timeout(BOUND):
            while True:
                found = [e.id async for e in client.list_workflows(query)]
                if found:
                    return found
                await asyncio.sleep(0.3)

    assert _run(runs) == [first.json()["id"]]
    audit = rig.admin(
        "GET", "/api/v1/audit", params={"action": "promotion.promoted", "project": target_project}
    )
    assert audit.status_code == 200, audit.text
    events = audit.json()["items"]
    assert [(e["actor"], e["request_id"]) for e in events] == [("admin", first.json()["id"])]
    assert events[0]["resource"] == f"{source}@{image.digest} -> {target}:prod"
    listed = rig.admin("GET", "/api/v1/promotions", params={"project": target_project})
    assert [item["id"] for item in listed.json()["items"]] == [first.json()["id"]]
    assert listed.json()["items"][0]["digest"] == image.digest


def test_gates_refuse_with_their_reasons(rig: Rig) -> None:
    rig.spawn_worker()
    project = _project(rig)
    repo = f"{project}/app"
    rig.oci.push_image(repo, "rc1")
    refused = _promote(
        rig,
        f"{repo}:rc1",
        f"{repo}:prod",
        max_severity="critical",
        signed=True,
        builder="https://ci.example/builder",
    )
    assert refused.status_code == 202, refused.text
    body = _wait(rig, refused.json()["id"], {"promoted", "refused", "failed"})
    assert body["status"] == "refused"
    reasons = {g["gate"]: (g["passed"], g["reason"]) for g in body["gates"]}
    assert reasons["scan"] == (False, "not scanned")
    assert reasons["signed"] == (False, "the source project has no trust policy")
    assert reasons["provenance"] == (
        False,
        "no verified provenance from https://ci.example/builder",
    )
    assert _manifest(rig.oci, repo, "prod").status_code == 404


def test_manual_approval_by_signal_and_its_timeout(rig: Rig) -> None:
    rig.spawn_worker()
    project = _project(rig)
    repo = f"{project}/app"
    image = rig.oci.push_image(repo, "rc1")
    waiting = _promote(rig, f"{repo}:rc1", f"{repo}:prod", approval=True)
    promotion = waiting.json()["id"]
    assert _wait(rig, promotion, {"waiting_approval"})["status"] == "waiting_approval"
    assert _manifest(rig.oci, repo, "prod").status_code == 404
    approved = rig.admin("POST", f"/api/v1/promotions/{promotion}/approve")
    assert approved.status_code == 202, approved.text
    done = _wait(rig, promotion, {"promoted", "refused", "failed"})
    assert done["status"] == "promoted"
    assert done["gates"][-1] == {"gate": "approval", "passed": True, "reason": "approved by admin"}
    assert digest_of(_manifest(rig.oci, repo, "prod").content) == image.digest

    late = _promote(rig, f"{repo}:rc1", f"{repo}:late", approval=True, approval_timeout_seconds=1)
    timed_out = _wait(rig, late.json()["id"], {"promoted", "refused", "failed"})
    assert (timed_out["status"], timed_out["reason"]) == ("refused", "approval: timed out")
    assert _manifest(rig.oci, repo, "late").status_code == 404


def _nothing_copied(rig: Rig, target: str, image: Pushed) -> None:
    for blob in image.blobs:
        assert rig.oci.request("HEAD", f"/v2/{target}/blobs/{blob}", target).status_code == 404
    assert _manifest(rig.oci, target, image.digest).status_code == 404


def test_immutable_target_tag_fails_with_nothing_copied(rig: Rig) -> None:
    rig.spawn_worker()
    source_project, target_project = _project(rig), _project(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    image = rig.oci.push_image(source, "rc1")
    held = rig.oci.push_image(target, "prod")
    rules = {"rules": [{"tag": {"pattern": "prod"}}]}
    put = rig.admin("PUT", f"/api/v1/projects/{target_project}/immutability", json=rules)
    assert put.status_code == 200, put.text
    started = _promote(rig, f"{source}:rc1", f"{target}:prod")
    body = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    assert body["status"] == "failed"
    assert "immutable" in body["reason"]
    assert digest_of(_manifest(rig.oci, target, "prod").content) == held.digest
    _nothing_copied(rig, target, image)


def test_a_proxy_cache_project_is_refused_as_a_target_with_nothing_copied(rig: Rig) -> None:
    rig.spawn_worker()
    source_project, target_project = _project(rig), _project(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    image = rig.oci.push_image(source, "rc1")
    endpoint = {"name": f"up-{target_project}", "url": "https://upstream.example.com"}
    created = rig.admin("POST", "/api/v1/registries", json={**endpoint, "type": "distribution"})
    assert created.status_code == 201, created.text
    binding = {"endpoint": endpoint["name"]}
    bound = rig.admin("PUT", f"/api/v1/projects/{target_project}/proxy", json=binding)
    assert bound.status_code == 200, bound.text
    started = _promote(rig, f"{source}:rc1", f"{target}:prod")
    assert started.status_code == 202, started.text
    body = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    assert body["status"] == "failed"
    assert "proxy cache" in body["reason"]
    # unbound again, reads of the project are local (not asked of the upstream)
    assert rig.admin("DELETE", f"/api/v1/projects/{target_project}/proxy").status_code == 204
    _nothing_copied(rig, target, image)
    assert _manifest(rig.oci, target, "prod").status_code == 404


def test_full_quota_fails_with_nothing_copied(rig: Rig) -> None:
    rig.spawn_worker()
    source_project = _project(rig)
    target_project = _project(rig, bytes=64)
    source, target = f"{source_project}/app", f"{target_project}/app"
    image = rig.oci.push_image(source, "rc1")
    started = _promote(rig, f"{source}:rc1", f"{target}:prod")
    body = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    assert body["status"] == "failed"
    assert "quota" in body["reason"]
    _nothing_copied(rig, target, image)
    assert _manifest(rig.oci, target, "prod").status_code == 404
    quota = rig.admin("GET", f"/api/v1/projects/{target_project}/quota").json()
    assert quota["used_bytes"] == 0


def _robot(rig: Rig, project: str, actions: list[str]) -> tuple[str, str]:
    response = rig.admin(
        "POST",
        f"/api/v1/projects/{project}/robots",
        json={
            "name": f"ci{uuid.uuid4().hex[:8]}",
            "permissions": [{"repository": "*", "actions": actions}],
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["name"]), str(response.json()["secret"])


def test_a_robot_with_the_promote_permission_promotes_one_without_is_refused(rig: Rig) -> None:
    rig.spawn_worker()
    project = _project(rig)
    repo = f"{project}/app"
    image = rig.oci.push_image(repo, "rc1")
    ci = _robot(rig, project, ["pull", "promote"])
    pusher = _robot(rig, project, ["pull", "push"])

    refused = _promote(rig, f"{repo}:rc1", f"{repo}:prod", auth=pusher)
    assert refused.status_code == 403, refused.text
    assert "promotion into" in refused.json()["detail"], refused.json()

    allowed = _promote(rig, f"{repo}:rc1", f"{repo}:prod", auth=ci)
    assert allowed.status_code == 202, allowed.text
    shown = rig.oci.client.get(f"/api/v1/promotions/{allowed.json()['id']}", auth=ci)
    assert shown.status_code == 200, shown.text
    done = _wait(rig, allowed.json()["id"], {"promoted", "refused", "failed"})
    assert done["status"] == "promoted"
    assert digest_of(_manifest(rig.oci, repo, "prod").content) == image.digest
    # the robot without the permission cannot read it either
    hidden = rig.oci.client.get(f"/api/v1/promotions/{allowed.json()['id']}", auth=pusher)
    assert hidden.status_code == 403


def test_worker_killed_after_the_copy_ends_in_one_promotion(rig: Rig) -> None:
    source_project, target_project = _project(rig), _project(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    image, referrer, _ = _image_with_referrer(rig.oci, source, "rc1")
    marker = rig.root / "stalled.json"
    faulty = rig.spawn_worker(
        [
            sys.executable,
            "-m",
            "tests.services.faulty_worker",
            "--activity",
            COPY_IMAGE,
            "--when",
            "after",
            "--marker",
            str(marker),
            "--hold",
            "300",
            "--skip",
            "0",
        ]
    )
    started = _promote(rig, f"{source}:rc1", f"{target}:prod")
    assert started.status_code == 202, started.text
    faulty.wait_until(marker.exists, timeout=BOUND, what="the copy stalls after its side effect")
    facts = json.loads(marker.read_text(encoding="utf-8"))
    faulty.popen.kill()  # kill -9 of that worker's PID only
    faulty.popen.wait(timeout=30)
    faulty.stop()
    # The copy happened once already; the lost attempt is failed as its timeout would.
    assert digest_of(_manifest(rig.oci, target, "prod").content) == image.digest
    rig.spawn_worker()

    async def fail_lost_attempt() -> None:
        client = await _client(rig.settings)
        handle = client.get_async_activity_handle(
            workflow_id=facts["workflow_id"],
            run_id=facts["run_id"],
            activity_id=facts["activity_id"],
        )
        await handle.fail(ApplicationError("the worker running this attempt was killed"))

    _run(fail_lost_attempt)
    done = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    assert done["status"] == "promoted", done
    assert done["copied"]["digest"] == image.digest
    copied_referrers, records = _referrers(rig.oci, target, image.digest)
    assert copied_referrers == [referrer]
    assert len(records) == 1  # the retried copy stored the same record, once
    tags = rig.oci.request("GET", f"/v2/{target}/tags/list", target).json()["tags"]
    assert sorted(tags) == sorted(["prod", image.digest.replace(":", "-") + ".sig"])
    quota = rig.admin("GET", f"/api/v1/projects/{target_project}/quota").json()
    source_quota = rig.admin("GET", f"/api/v1/projects/{source_project}/quota").json()
    record = records[0]
    record_bytes = len(json.dumps(record, sort_keys=True, separators=(",", ":")))
    record_bytes += sum(d["size"] for d in [record["config"], *record["layers"]])
    # nothing counted twice: the source's bytes plus the record's
    assert quota["used_bytes"] == source_quota["used_bytes"] + record_bytes


def test_bad_requests_name_the_field(rig: Rig) -> None:
    project = _project(rig)
    rig.oci.push_image(f"{project}/app", "rc1")
    cases = [
        ({"source": f"{project}/app", "target": f"{project}/app:prod"}, "source"),
        ({"source": f"{project}/app:rc1", "target": f"{project}/app"}, "target"),
        (
            {
                "source": f"{project}/app:rc1",
                "target": f"{project}/app:prod",
                "gates": {"max_severity": "severe"},
            },
            "gates.max_severity",
        ),
    ]
    for body, field_name in cases:
        response = rig.admin("POST", "/api/v1/promotions", json=body)
        assert response.status_code == 422, response.text
        assert field_name in response.text
    unknown = rig.admin(
        "POST",
        "/api/v1/promotions",
        json={"source": f"{project}/app:nope", "target": f"{project}/app:prod"},
    )
    assert unknown.status_code == 404, unknown.text


def _tar_layer() -> bytes:
    """An uncompressed tar layer holding one small file."""
    content = b"hello\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("etc/hello.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_the_scan_gate_reads_the_image_s_scan(rig: Rig) -> None:
    rig.spawn_worker()
    project = _project(rig, scan_on_push=True)
    repo = f"{project}/app"
    image = rig.oci.push_image(repo, "rc1", layers=[_tar_layer()])
    deadline = time.monotonic() + BOUND
    for _ in range(POLLS):
        summary = rig.admin("GET", f"/api/v1/projects/{project}/scans/{image.digest}")
        if summary.status_code == 200 and summary.json().get("status") == "succeeded":
            break
        assert time.monotonic() < deadline, summary.text
        time.sleep(0.2)
    started = _promote(rig, f"{repo}:rc1", f"{repo}:prod", max_severity="low")
    assert started.status_code == 202, started.text
    body = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    # The image holds one plain file and no package, so its scan has no finding at all.
    assert body["status"] == "promoted", body
    assert body["gates"] == [
        {"gate": "scan", "passed": True, "reason": "no finding at or above low"}
    ]


def test_a_gate_that_is_waited_for_promotes_once_the_scan_arrives(rig: Rig) -> None:
    """``wait_seconds``: the scan gate fails ("not scanned"), the promotion waits, the
    image is scanned meanwhile, and the next evaluation promotes it."""
    rig.spawn_worker()
    project = _project(rig)  # no scan on push: the first evaluation finds no report
    repo = f"{project}/app"
    image = rig.oci.push_image(repo, "rc1", layers=[_tar_layer()])
    started = _promote(rig, f"{repo}:rc1", f"{repo}:prod", max_severity="low", wait_seconds=300)
    assert started.status_code == 202, started.text
    promotion = started.json()["id"]
    waiting = _wait(rig, promotion, {"waiting_gates", "promoted", "refused", "failed"})
    assert waiting["status"] == "waiting_gates", waiting
    assert waiting["gates"] == [{"gate": "scan", "passed": False, "reason": "not scanned"}]
    assert _manifest(rig.oci, repo, "prod").status_code == 404

    scan = rig.admin(
        "POST",
        f"/api/v1/projects/{project}/scans",
        json={"repository": repo, "digest": image.digest},
    )
    assert scan.status_code == 202, scan.text
    body = _wait(rig, promotion, {"promoted", "refused", "failed"})
    assert body["status"] == "promoted", body
    assert body["gates"] == [
        {"gate": "scan", "passed": True, "reason": "no finding at or above low"}
    ]
    assert digest_of(_manifest(rig.oci, repo, "prod").content) == image.digest


def test_a_wait_that_runs_out_refuses_with_the_last_reason(rig: Rig) -> None:
    rig.spawn_worker()
    project = _project(rig)
    repo = f"{project}/app"
    rig.oci.push_image(repo, "rc1", layers=[_tar_layer()])
    started = _promote(rig, f"{repo}:rc1", f"{repo}:prod", max_severity="low", wait_seconds=1)
    assert started.status_code == 202, started.text
    body = _wait(rig, started.json()["id"], {"promoted", "refused", "failed"})
    assert body["status"] == "refused", body
    assert body["reason"] == "scan: not scanned"
    assert _manifest(rig.oci, repo, "prod").status_code == 404
    too_long = _promote(rig, f"{repo}:rc1", f"{repo}:later", wait_seconds=8 * 24 * 3600)
    assert too_long.status_code in (400, 422), too_long.text
    assert "gates.wait_seconds" in too_long.text
