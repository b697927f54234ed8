"""P2P preheat end to end: API and worker processes, Temporal, stand-in providers.

The real Dragonfly cannot be had here (the Go module proxy refuses it; its manager needs
MySQL, Redis, a scheduler and seed peers), so these tests run against stand-ins speaking
the documented APIs (``tests.services.p2p_standins``); the real Kraken runs in
``test_preheat_kraken``. The Dragonfly stand-in fetches the image from Moorage
with the token the job carried, as the real seed peer does, and tries a push and another
repository with it: so these tests prove the token works and may pull exactly that
repository and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from tests.api.oci import OCIClient
from tests.integration.trust_rig import push_signature
from tests.integration.trust_rig import results as trust_results
from tests.replication.rig import (
    Site,
    push_image,
    start_site,
    terminate_workflow,
    wait_for,
    workflow_states,
)
from tests.services.forkserver import run_captured
from tests.services.moorage import REPO_ROOT
from tests.services.p2p_standins import (
    DragonflyStandIn,
    KrakenStandIn,
    start_dragonfly,
    start_kraken,
)
from tests.unit.core.trust_fixtures import new_key, public_pem

pytestmark = pytest.mark.integration

PAT = "pat-" + secrets.token_hex(8)
FAST_POLLS = {
    "MOORAGE_PREHEAT__POLL_INITIAL_SECONDS": "0.2",
    "MOORAGE_PREHEAT__POLL_MAX_SECONDS": "1",
    "MOORAGE_PREHEAT__HEARTBEAT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, temporal_server: Any) -> Iterator[Site]:
    found = start_site(
        tmp_path_factory.mktemp("preheat-site"), temporal_server.address, **FAST_POLLS
    )
    yield found
    found.stop()


@pytest.fixture(scope="module")
def client(site: Site) -> Iterator[httpx.Client]:
    with site.client() as http:
        yield http


@pytest.fixture(scope="module")
def dragonfly() -> Iterator[DragonflyStandIn]:
    server = start_dragonfly(PAT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kraken() -> Iterator[KrakenStandIn]:
    server = start_kraken()
    yield server
    server.stop()


def _instance(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/p2p/instances", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert "secret" not in created
    return created


def _policy(client: httpx.Client, project: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/projects/{project}/preheat/policies", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _finished(client: httpx.Client, project: str, execution_id: str) -> dict[str, Any] | None:
    response = client.get(f"/api/v1/projects/{project}/preheat/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return None if body["status"] in ("running", "stopping") else body


def _tasks(client: httpx.Client, project: str, execution_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/projects/{project}/preheat/executions/{execution_id}/tasks")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def _run(client: httpx.Client, project: str, policy_id: int) -> dict[str, Any]:
    started = client.post(f"/api/v1/projects/{project}/preheat/policies/{policy_id}/executions")
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]
    done: dict[str, Any] = wait_for(
        lambda: _finished(client, project, execution_id), "the preheat execution"
    )
    return done


def _project() -> str:
    return f"ph{secrets.token_hex(4)}"


def test_manual_preheat_hands_dragonfly_a_pull_only_token_for_that_repository(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    project = _project()
    digest = push_image(site.url, f"{project}/app", "v1", [b"layer-one", b"layer-two"], site.auth)
    push_image(site.url, f"{project}/app", "dev", [b"dev-layer"], site.auth)
    push_image(site.url, f"{project}/secret", "v1", [b"secret-layer"], site.auth)
    dragonfly.other_repository = f"{project}/secret"
    instance = _instance(
        client,
        name=f"df-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    assert instance["has_secret"] is True
    health = client.post(f"/api/v1/p2p/instances/{instance['id']}/health")
    assert health.status_code == 200, health.text
    assert health.json()["healthy"] is True

    policy = _policy(
        client,
        project,
        name="to-seeds",
        instance=instance["name"],
        repositories="app",
        tags="v*",
        scope="all_seed_peers",
        cluster_ids=[3],
    )
    before = len(dragonfly.job_list())
    execution = _run(client, project, policy["id"])

    assert execution["status"] == "succeeded", execution
    assert (execution["total"], execution["succeeded"], execution["failed"]) == (1, 1, 0)
    [task] = _tasks(client, project, execution["id"])
    assert (task["repository"], task["tag"], task["digest"]) == (f"{project}/app", "v1", digest)
    assert task["status"] == "succeeded"
    # config and two layers: one success task each, as the seed peer reported them
    assert task["peers_succeeded"] == 3
    assert task["peers_failed"] == 0
    assert {p["hostname"] for p in task["peers"]} == {"seed-peer-1"}
    assert {p["cluster_id"] for p in task["peers"]} == {3}

    [job] = dragonfly.job_list()[before:]
    assert task["job_id"] == str(job.id)
    args = job.body["args"]
    assert args["type"] == "image"
    assert args["url"] == f"{site.url}/v2/{project}/app/manifests/{digest}"
    assert args["scope"] == "all_seed_peers"
    assert job.body["scheduler_cluster_ids"] == [3]
    statuses = {f.what: f.status for f in job.fetches if f.what in ("manifest", "push", "other")}
    blobs = [f.status for f in job.fetches if f.what == "blob"]
    # the token pulled the manifest and every blob ...
    assert statuses["manifest"] == 200
    assert blobs == [200, 200, 200]
    # ... and nothing else: no push, no other repository
    assert statuses["push"] in (401, 403)
    assert statuses["other"] in (401, 403)
    # the provider was called with its personal access token
    creates = [h for m, path, h in dragonfly.requests if m == "POST" and path == "/oapi/v1/jobs"]
    assert all(h.get("Authorization") == f"Bearer {PAT}" for h in creates)
    # the token handed over pulls exactly that repository, for as long as the job may run
    # (the default job timeout, an hour, and the poll's minute of grace)
    token = args["headers"]["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": f"{project}/app", "actions": ["pull"]}
    ]
    assert claims["exp"] - claims["iat"] == 3600 + 60

    listed = client.get(f"/api/v1/projects/{project}/preheat/executions")
    assert execution["id"] in [e["id"] for e in listed.json()["items"]]


def test_event_based_preheat_notifies_kraken_on_push(
    site: Site, client: httpx.Client, kraken: KrakenStandIn
) -> None:
    project = _project()
    push_image(site.url, f"{project}/seed", "old", [b"before-policy"], site.auth)
    instance = _instance(client, name=f"kr-{project}", vendor="kraken", endpoint=kraken.url)
    _policy(
        client,
        project,
        name="on-push",
        instance=instance["name"],
        repositories="web/**",
        trigger="event_based",
    )
    digest = push_image(site.url, f"{project}/web/frontend", "v7", [b"pushed-layer"], site.auth)
    push_image(site.url, f"{project}/api", "v7", [b"filtered-out"], site.auth)

    def notified() -> list[dict[str, Any]]:
        return [
            n
            for n in kraken.received()
            if n["events"][0]["target"].get("repository", "").startswith(project)
        ]

    [envelope] = wait_for(notified, "the Kraken notification")
    assert envelope["content_type"].startswith("application/vnd.docker.distribution.events.v1+json")
    [event] = envelope["events"]
    assert event["action"] == "push"
    target = event["target"]
    assert (target["repository"], target["tag"], target["digest"]) == (
        f"{project}/web/frontend",
        "v7",
        digest,
    )
    assert target["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    def finished_run() -> dict[str, Any] | None:
        listed = client.get(f"/api/v1/projects/{project}/preheat/executions").json()["items"]
        done = [e for e in listed if e["status"] != "running"]
        return done[0] if done else None

    execution = wait_for(finished_run, "the event-based execution")
    assert execution["trigger"] == "event_based"
    assert execution["status"] == "succeeded"
    [task] = _tasks(client, project, execution["id"])
    assert task["repository"] == f"{project}/web/frontend"


def test_a_failing_provider_job_is_recorded_as_failure(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"will-fail"], site.auth)
    instance = _instance(
        client,
        name=f"df-fail-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    policy = _policy(client, project, name="fails", instance=instance["name"])
    dragonfly.mode = "fail"
    try:
        execution = _run(client, project, policy["id"])
    finally:
        dragonfly.mode = "ok"
    assert execution["status"] == "failed", execution
    [task] = _tasks(client, project, execution["id"])
    assert task["status"] == "failed"
    assert task["job_id"]
    assert task["peers_failed"] == 2
    assert task["peers_succeeded"] == 0
    assert "seed peer download failed" in (task["error"] or "")


def test_wrong_provider_credentials_fail_the_task_without_retrying_forever(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"bad-pat"], site.auth)
    instance = _instance(
        client,
        name=f"df-badpat-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret="not-the-pat",
    )
    policy = _policy(client, project, name="bad-pat", instance=instance["name"])
    execution = _run(client, project, policy["id"])
    assert execution["status"] == "failed"
    [task] = _tasks(client, project, execution["id"])
    assert task["job_id"] is None
    assert "401" in (task["error"] or "")


def test_an_endpoint_at_the_metadata_address_is_refused(client: httpx.Client) -> None:
    refused = client.post(
        "/api/v1/p2p/instances",
        json={"name": "metadata", "vendor": "dragonfly", "endpoint": "http://169.254.169.254/"},
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "endpoint" in [e["field"] for e in refused.json()["errors"]]


def test_scheduled_policy_runs_from_its_temporal_schedule(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """The policy's schedule follows it; a run it starts is a ``scheduled`` execution."""
    project = _project()
    push_image(site.url, f"{project}/app", "1.0", [b"scheduled-layer"], site.auth)
    instance = _instance(
        client,
        name=f"df-sched-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    body = {"name": "nightly", "instance": instance["name"], "trigger": "scheduled"}
    made = _policy(client, project, **body, cron="0 3 1 1 *")
    address = site.env["MOORAGE_TEMPORAL__ADDRESS"]

    async def trigger() -> None:
        temporal = await Client.connect(address)
        await temporal.get_schedule_handle(f"moorage-preheat-{made['id']}").trigger()

    asyncio.run(trigger())

    def scheduled_run() -> dict[str, Any] | None:
        listed = client.get(f"/api/v1/projects/{project}/preheat/executions").json()["items"]
        runs = [e for e in listed if e["trigger"] == "scheduled" and e["status"] != "running"]
        return runs[0] if runs else None

    done = wait_for(scheduled_run, "the scheduled execution")
    assert done["status"] == "succeeded", done
    assert [t["tag"] for t in _tasks(client, project, done["id"])] == ["1.0"]

    changed = client.put(
        f"/api/v1/projects/{project}/preheat/policies/{made['id']}",
        json={**body, "trigger": "manual"},
    )
    assert changed.status_code == 200, changed.text

    async def gone() -> bool:
        temporal = await Client.connect(address)
        try:
            await temporal.get_schedule_handle(f"moorage-preheat-{made['id']}").describe()
        except RPCError:
            return True
        return False

    assert asyncio.run(gone()), "a manual policy has no schedule"


def _cli(site: Site, *args: str) -> Any:
    """Run ``moorage preheat`` with ``args``; its JSON answer (it must succeed)."""
    done = _cli_run(site, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _cli_run(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "MOORAGE_URL": site.url,
        "MOORAGE_USERNAME": site.auth[0],
        "MOORAGE_PASSWORD": site.auth[1],
        "MOORAGE_PREHEAT_SECRET": PAT,
    }
    return run_captured(
        [sys.executable, "-m", "cli.main", "preheat", *args], env=env, timeout=300, cwd=REPO_ROOT
    )


def test_cli_manages_instances_and_policies_and_runs(
    site: Site, dragonfly: DragonflyStandIn
) -> None:
    project = _project()
    digest = push_image(site.url, f"{project}/tool", "2", [b"cli-layer"], site.auth)
    name = f"df-cli-{project}"
    made = _cli(
        site, "instance", "create", name, "dragonfly", dragonfly.url, "--auth-mode", "bearer"
    )
    assert made["has_secret"] is True
    assert name in [i["name"] for i in _cli(site, "instance", "list")["items"]]
    assert _cli(site, "instance", "ping", str(made["id"]))["healthy"] is True
    policy = _cli(
        site, "policy", "create", "-p", project, "cli", name, "--tags", "2", "--cluster", "4"
    )
    assert policy["cluster_ids"] == [4]
    assert [p["id"] for p in _cli(site, "policy", "list", "-p", project)["items"]] == [policy["id"]]
    done = _cli(site, "policy", "run", "-p", project, str(policy["id"]), "--wait")
    assert done["status"] == "succeeded", done
    one = _cli(site, "executions", "-p", project, "--id", done["id"])
    assert [(t["repository"], t["digest"], t["status"]) for t in one["tasks"]] == [
        (f"{project}/tool", digest, "succeeded")
    ]
    assert [e["id"] for e in _cli(site, "executions", "-p", project)["items"]] == [done["id"]]
    _cli(site, "policy", "delete", "-p", project, str(policy["id"]))
    _cli(site, "instance", "delete", str(made["id"]))


def test_unsigned_and_unscanned_images_are_left_out(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """The signature and vulnerability filters read the stored verdicts: none, nothing kept."""
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"unsigned-unscanned"], site.auth)
    instance = _instance(
        client,
        name=f"df-filters-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    before = len(dragonfly.job_list())
    for name, extra in (("signed", {"signed_only": True}), ("clean", {"severity": "critical"})):
        policy = _policy(client, project, name=name, instance=instance["name"], **extra)
        execution = _run(client, project, policy["id"])
        assert execution["status"] == "succeeded", execution
        assert execution["total"] == 0
        assert _tasks(client, project, execution["id"]) == []
    plain = _policy(client, project, name="plain", instance=instance["name"])
    assert _run(client, project, plain["id"])["total"] == 1
    assert len(dragonfly.job_list()) == before + 1


def test_signed_only_keeps_images_with_a_verified_signature(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """A signature the trust subscriber verified lets the image through ``signed_only``."""
    project = _project()
    repo = f"{project}/app"
    signed = push_image(site.url, repo, "v1", [b"signed-image"], site.auth)
    push_image(site.url, repo, "v2", [b"unsigned-image"], site.auth)
    key = new_key()
    # NOTE: not enforced: results are recorded, no pull is refused (the filter reads the
    # stored verdicts itself; the pull gate is the trust feature's, tested there)
    document = {"enforce": False, "keys": [{"name": "ci", "public_key": public_pem(key)}]}
    saved = client.put(f"/api/v1/projects/{project}/trust/policy", json=document)
    assert saved.status_code == 200, saved.text
    oci = OCIClient(client, site.auth[1], site.auth[0])
    push_signature(oci, repo, signed, key)
    wait_for(
        lambda: [r for r in trust_results(oci, repo, signed) if r["verified"]],
        "the signature verified by the trust subscriber",
    )
    instance = _instance(
        client,
        name=f"df-signed-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    policy = _policy(
        client, project, name="signed", instance=instance["name"], tags="v*", signed_only=True
    )
    execution = _run(client, project, policy["id"])
    assert execution["status"] == "succeeded", (execution, _tasks(client, project, execution["id"]))
    assert [(t["tag"], t["digest"]) for t in _tasks(client, project, execution["id"])] == [
        ("v1", signed)
    ]


def _executions(client: httpx.Client, project: str) -> list[dict[str, Any]]:
    listed = client.get(f"/api/v1/projects/{project}/preheat/executions", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()["items"]
    return found


def _finished_runs(client: httpx.Client, project: str, count: int) -> list[dict[str, Any]] | None:
    """The project's executions once ``count`` of them finished (oldest first)."""
    done = [e for e in _executions(client, project) if e["status"] != "running"]
    return sorted(done, key=lambda e: e["started_at"]) if len(done) >= count else None


def _preheated(client: httpx.Client, project: str) -> list[dict[str, Any]] | None:
    """The project's finished executions that preheated something."""
    return [r for r in _finished_runs(client, project, 1) or [] if r["total"]] or None


def test_an_image_held_back_unscanned_is_preheated_when_its_scan_completes(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """Harbor's OnScanComplete, and the vulnerability criterion inherited from the project.

    The project refuses pulls of images with a critical finding (its scan policy), so its
    event-based policy, which sets no criterion of its own, preheats only images scanned
    without one. At push time the image is not scanned (scan on push is off): the push's
    run leaves it out. Once its scan completes clean, the scan's event preheats it.
    """
    project = _project()
    assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
    scan_policy = {"scan_on_push": False, "prevent_severity": "Critical"}
    saved = client.put(f"/api/v1/projects/{project}/scan-policy", json=scan_policy)
    assert saved.status_code == 200, saved.text
    instance = _instance(
        client,
        name=f"df-scan-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    made = _policy(
        client, project, name="on-events", instance=instance["name"], trigger="event_based"
    )
    # shown with the policy: what the project imposes on it
    assert made["project_criteria"] == {"signed_only": False, "severity": "critical"}
    repo = f"{project}/app"
    # an empty tar: a layer the scanner reads, with no package in it
    digest = push_image(site.url, repo, "v1", [b"\0" * 1024], site.auth)

    held = wait_for(lambda: _finished_runs(client, project, 1), "the push's execution")
    assert [(r["trigger"], r["status"], r["total"]) for r in held] == [
        ("event_based", "succeeded", 0)
    ] * len(held), "held back: not scanned yet"

    def jobs() -> list[Any]:
        return [j for j in dragonfly.job_list() if f"/{repo}/manifests/" in j.body["args"]["url"]]

    assert jobs() == []
    scan = client.post(
        f"/api/v1/projects/{project}/scans", json={"repository": repo, "digest": digest}
    )
    assert scan.status_code == 202, scan.text

    [after_scan] = wait_for(lambda: _preheated(client, project), "the scan's execution")
    assert after_scan["trigger"] == "event_based"
    assert after_scan["status"] == "succeeded", after_scan
    [task] = _tasks(client, project, after_scan["id"])
    assert (task["repository"], task["tag"], task["digest"]) == (repo, "v1", digest)
    [job] = jobs()
    assert job.body["args"]["url"] == f"{site.url}/v2/{repo}/manifests/{digest}"


def test_an_unsigned_image_is_preheated_when_its_signature_verifies(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """The signature criterion inherited from an enforced trust policy, and the
    ``signature.verified`` event as a trigger (Moorage's, beside Harbor's three)."""
    project = _project()
    assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
    key = new_key()
    document = {"enforce": True, "keys": [{"name": "ci", "public_key": public_pem(key)}]}
    saved = client.put(f"/api/v1/projects/{project}/trust/policy", json=document)
    assert saved.status_code == 200, saved.text
    instance = _instance(
        client,
        name=f"df-sig-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    made = _policy(
        client, project, name="signed", instance=instance["name"], tags="v*", trigger="event_based"
    )
    assert made["project_criteria"] == {"signed_only": True, "severity": None}
    repo = f"{project}/app"
    digest = push_image(site.url, repo, "v1", [b"to-be-signed"], site.auth)
    held = wait_for(lambda: _finished_runs(client, project, 1), "the push's execution")
    assert [(r["status"], r["total"]) for r in held] == [("succeeded", 0)] * len(held), (
        "held back: not signed"
    )

    oci = OCIClient(client, site.auth[1], site.auth[0])
    push_signature(oci, repo, digest, key)
    runs = wait_for(
        lambda: _preheated(client, project), "the execution the verified signature started"
    )
    [signed_run] = runs
    assert signed_run["status"] == "succeeded", (
        signed_run,
        _tasks(client, project, signed_run["id"]),
    )
    [task] = _tasks(client, project, signed_run["id"])
    assert (task["tag"], task["digest"]) == ("v1", digest)
    # the provider could pull it: the image meets the project's enforced policy
    [job] = [j for j in dragonfly.job_list() if f"/{repo}/manifests/" in j.body["args"]["url"]]
    assert [f.status for f in job.fetches if f.what == "manifest"] == [200]


def test_a_stopped_execution_stops_polling_and_says_which_job_it_left_running(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """``moorage preheat stop`` while a job runs: the run ends, its task reads stopped."""
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"stopped-layer"], site.auth)
    executions = f"/api/v1/projects/{project}/preheat/executions"
    dragonfly.hold = True
    try:
        execution_id, job, jobs = _held_run(client, dragonfly, project, "stopped")
        path = f"/oapi/v1/jobs/{job.id}"

        def polls() -> int:
            return len([p for m, p, _ in dragonfly.requests if m == "GET" and p == path])

        wait_for(polls, "the worker polling the job")

        answer = _cli(site, "stop", "--project", project, execution_id)
        assert answer["id"] == execution_id
        assert answer["status"] in ("stopping", "stopped"), answer

        done = wait_for(lambda: _finished(client, project, execution_id), "the stop to settle")
        assert done["status"] == "stopped", done
        assert done["reason"] == f"stopped by {site.auth[0]}", done
        assert (done["total"], done["succeeded"], done["failed"]) == (1, 0, 1), done
        [task] = _tasks(client, project, execution_id)
        assert task["status"] == "stopped", task
        assert task["job_id"] == str(job.id), task
        assert task["error"] == "not finished: the execution was stopped", task

        # the run ends cancelled with no activity left, so nothing polls the job any more
        cancelled = (WorkflowExecutionStatus.CANCELED, 0)
        seen: dict[str, tuple[Any, int]] = {}

        def ended() -> bool:
            seen.update(workflow_states(site, [execution_id]))
            return seen == {execution_id: cancelled}

        try:
            wait_for(ended, "the run to end cancelled", timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen}") from exc
        polled = polls()
        assert job.state == "RUNNING", "the provider's job is left to the provider"

        again = client.post(f"{executions}/{execution_id}/stop")
        assert again.status_code == 409, again.text
        assert "already finished (stopped)" in again.json()["detail"], again.json()
        refused = _cli_run(site, "stop", "--project", project, execution_id)
        assert refused.returncode == 1, refused.stdout + refused.stderr
    finally:
        dragonfly.hold = False
    wait_for(lambda: job.state != "RUNNING", "the held job to settle")
    after = client.get(f"{executions}/{execution_id}").json()
    assert after == done, "the job's end is recorded nowhere: the execution stays stopped"
    assert polls() == polled
    assert len(jobs()) == 1


def test_only_a_running_execution_of_the_project_can_be_stopped(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    project, other = _project(), _project()
    push_image(site.url, f"{project}/app", "v1", [b"finished-layer"], site.auth)
    push_image(site.url, f"{other}/app", "v1", [b"other-layer"], site.auth)
    instance = _instance(
        client,
        name=f"df-fin-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="oauth",
        secret=PAT,
    )
    policy = _policy(client, project, name="fin", instance=instance["name"])
    done = _run(client, project, policy["id"])
    assert done["status"] == "succeeded", done

    finished = client.post(f"/api/v1/projects/{project}/preheat/executions/{done['id']}/stop")
    assert finished.status_code == 409, finished.text
    assert "already finished (succeeded)" in finished.json()["detail"], finished.json()
    elsewhere = client.post(f"/api/v1/projects/{other}/preheat/executions/{done['id']}/stop")
    assert elsewhere.status_code == 404, elsewhere.text
    unknown = client.post(f"/api/v1/projects/{project}/preheat/executions/preheat-0-none/stop")
    assert unknown.status_code == 404, unknown.text
    read = client.get(f"/api/v1/projects/{project}/preheat/executions/{done['id']}")
    assert read.json()["status"] == "succeeded"


# NOTE: last, so the killed worker's other activities (event batches) delay no other test
def _held_run(
    client: httpx.Client, dragonfly: DragonflyStandIn, project: str, name: str
) -> tuple[str, Any, Callable[[], list[Any]]]:
    """Run a new Dragonfly policy of ``project`` by hand (``hold`` set): its execution id,
    the one job it created, and how to list the project's jobs."""
    instance = _instance(
        client,
        name=f"df-{name}-{project}",
        vendor="dragonfly",
        endpoint=dragonfly.url,
        auth_mode="bearer",
        secret=PAT,
    )
    policy = _policy(client, project, name=name, instance=instance["name"])

    def jobs() -> list[Any]:
        return [j for j in dragonfly.job_list() if f"/{project}/app/" in j.body["args"]["url"]]

    started = client.post(f"/api/v1/projects/{project}/preheat/policies/{policy['id']}/executions")
    assert started.status_code == 202, started.text
    [job] = wait_for(jobs, "the provider job")
    return started.json()["id"], job, jobs


def test_worker_killed_mid_poll_resumes_polling_the_same_job(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """kill -9 of the worker while it polls: the next worker polls the job it created."""
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"held-layer"], site.auth)
    dragonfly.hold = True
    try:
        execution_id, job, jobs = _held_run(client, dragonfly, project, "killed")
        path = f"/oapi/v1/jobs/{job.id}"
        wait_for(
            lambda: [p for m, p, _ in dragonfly.requests if m == "GET" and p == path],
            "the worker polling the job",
        )
        [task] = _tasks(client, project, execution_id)
        assert task["job_id"] == str(job.id)
        assert task["status"] == "running"
        os.kill(site.worker.pid, signal.SIGKILL)
        site.worker.popen.wait(timeout=30)
    finally:
        dragonfly.hold = False
    site.restart_worker()
    done = wait_for(lambda: _finished(client, project, execution_id), "the execution")
    assert done["status"] == "succeeded", done
    assert len(jobs()) == 1, "the job was created once"
    [task] = _tasks(client, project, execution_id)
    assert task["job_id"] == str(job.id)
    assert task["peers_succeeded"] == 2


def test_an_execution_whose_workflow_is_terminated_reads_as_failed_with_why(
    site: Site, client: httpx.Client, dragonfly: DragonflyStandIn
) -> None:
    """Terminated in Temporal while its job runs: the next read closes it, tasks too."""
    project = _project()
    push_image(site.url, f"{project}/app", "v1", [b"terminated-layer"], site.auth)

    dragonfly.hold = True
    try:
        execution_id, job, _ = _held_run(client, dragonfly, project, "terminated")
        wait_for(
            lambda: _tasks(client, project, execution_id)[0]["status"] == "running",
            "the task to hold its job",
        )
        terminate_workflow(site, execution_id)

        listed = client.get(f"/api/v1/projects/{project}/preheat/executions").json()["items"]
        [execution] = [e for e in listed if e["id"] == execution_id]
        assert execution["status"] == "failed", execution
        assert execution["reason"] == "the execution's workflow was terminated", execution
        assert (execution["total"], execution["succeeded"], execution["failed"]) == (1, 0, 1)
        read = client.get(f"/api/v1/projects/{project}/preheat/executions/{execution_id}")
        assert read.json() == execution
        [task] = _tasks(client, project, execution_id)
        assert task["status"] == "failed", task
        assert task["error"] == "not finished: the execution's workflow was terminated", task
    finally:
        dragonfly.hold = False
    # the job ends at the provider; nothing polls it any more, the execution stays closed
    wait_for(lambda: job.state != "RUNNING", "the held job to settle")
    after = client.get(f"/api/v1/projects/{project}/preheat/executions/{execution_id}")
    assert after.json() == execution
