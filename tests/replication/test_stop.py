"""Stopping a replication execution, on a real Temporal server and a real destination.

The site's worker caps what it sends over all copies (``replication.max_bytes_per_second``,
64 KiB/s) and the policy copies one artifact at a time, so a run of three 1 MiB images
is still early in its first copy when it is stopped: the cap's wiring is what keeps it
running that long. The destination is ``docker-registry`` behind a counting front.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.replication.rig import (
    Site,
    finished,
    manifest_digest,
    push_image,
    run_policy,
    start_site,
    tasks,
    terminate_workflow,
    wait_for,
    workflow_states,
)
from tests.services.forkserver import run_captured
from tests.services.registry_front import RegistryFront

pytestmark = pytest.mark.integration

CAP = 64 * 1024
LAYER = 1024 * 1024


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, temporal_server: Any) -> Iterator[Site]:
    found = start_site(
        tmp_path_factory.mktemp("stop-site"),
        temporal_server.address,
        MOORAGE_REPLICATION__MAX_BYTES_PER_SECOND=str(CAP),
    )
    yield found
    found.stop()


@pytest.fixture
def front(docker_registry: Any) -> Iterator[RegistryFront]:
    server = RegistryFront(docker_registry.url)
    yield server
    server.close()


def push_policy(site: Site, url: str, project: str) -> int:
    with site.client() as client:
        name = f"ep-{secrets.token_hex(4)}"
        body = {"name": name, "url": url, "type": "distribution", "credential": "none"}
        assert client.post("/api/v1/registries", json=body).status_code == 201
        made = client.post(
            "/api/v1/replication/policies",
            json={
                "name": f"p-{secrets.token_hex(4)}",
                "direction": "push",
                "endpoint": name,
                "repositories": f"{project}/**",
                "concurrency": 1,
            },
        )
        assert made.status_code == 201, made.text
        policy_id: int = made.json()["id"]
    return policy_id


def cli_stop(site: Site, execution_id: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "MOORAGE_URL": site.url,
        "MOORAGE_USERNAME": site.auth[0],
        "MOORAGE_PASSWORD": site.auth[1],
    }
    done = run_captured(
        [sys.executable, "-m", "cli.main", "replication", "stop", execution_id],
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def start_sending(client: httpx.Client, front: RegistryFront, policy_id: int) -> str:
    """Run the policy by hand; its execution id once its first bytes reach ``front``."""
    before = front.upload_bytes
    started = client.post(f"/api/v1/replication/policies/{policy_id}/executions")
    assert started.status_code == 202, started.text
    wait_for(lambda: front.upload_bytes > before, "the first bytes at the destination")
    execution_id: str = started.json()["id"]
    return execution_id


def test_a_stopped_execution_sends_nothing_more_and_says_what_was_done(
    site: Site, front: RegistryFront
) -> None:
    project = f"stop{secrets.token_hex(3)}"
    digests = {
        f"{project}/app{n}": push_image(
            site.url, f"{project}/app{n}", "1.0", [os.urandom(LAYER)], site.auth
        )
        for n in range(3)
    }
    policy_id = push_policy(site, front.url, project)
    before = front.upload_bytes
    with site.client() as client:
        execution_id = start_sending(client, front, policy_id)

        answer = cli_stop(site, execution_id)
        assert answer["id"] == execution_id
        assert answer["status"] in ("stopping", "stopped"), answer

        done = wait_for(lambda: finished(client, execution_id), "the stop to settle")
        assert done["status"] == "stopped", done
        assert done["reason"] == f"stopped by {site.auth[0]}", done
        assert done["finished_at"] is not None
        results = tasks(client, execution_id)

        # nothing runs any more: the run is cancelled, so is the one child it had started
        # (one artifact at a time), and neither has an activity left. The workflow records
        # the execution as stopped (an activity) before it ends, so its end may follow the
        # record by a workflow task: waited for, within a bound.
        child = f"{execution_id}-task-{results[0]['id']}"
        cancelled = (WorkflowExecutionStatus.CANCELED, 0)
        seen: dict[str, tuple[Any, int]] = {}

        def both_cancelled() -> bool:
            seen.update(workflow_states(site, [execution_id, child]))
            return seen == {execution_id: cancelled, child: cancelled}

        try:
            wait_for(both_cancelled, "the run and its child to end cancelled", timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen}") from exc
        sent = front.upload_bytes
        assert 0 < sent - before < 3 * LAYER

        statuses = [(t["source"], t["status"]) for t in results]
        assert statuses == [(repo, "stopped") for repo in sorted(digests)], results
        interrupted, *never = results
        assert interrupted["error"] == "stopped during the copy", interrupted
        assert interrupted["bytes_sent"] > 0, interrupted
        for task in never:
            assert task["error"] == "not run: the execution was stopped", task
            assert task["bytes_sent"] == 0, task
        for repo in digests:
            assert manifest_digest(front.url, repo, "1.0") is None, f"{repo} was not copied"

        again = client.post(f"/api/v1/replication/executions/{execution_id}/stop")
        assert again.status_code == 409, again.text
        problem = again.json()
        assert problem["status"] == 409
        assert "already finished (stopped)" in problem["detail"], problem

    # the worker goes on with other work (a run to another destination) and the stopped
    # run's destination still receives nothing
    other = RegistryFront(front.target, name="other")
    try:
        marker = push_image(site.url, f"{project}x/marker", "1", [b"marker"], site.auth)
        with site.client() as client:
            done = run_policy(client, push_policy(site, other.url, f"{project}x"))
        assert done["status"] == "succeeded", done
        assert manifest_digest(other.url, f"{project}x/marker", "1") == marker
    finally:
        other.close()
    assert front.upload_bytes == sent, "nothing was sent after the stop settled"


def test_stopping_a_finished_execution_is_a_conflict(site: Site, front: RegistryFront) -> None:
    project = f"fin{secrets.token_hex(3)}"
    digest = push_image(site.url, f"{project}/tool", "1", [b"small"], site.auth)
    policy_id = push_policy(site, front.url, project)
    with site.client() as client:
        done = run_policy(client, policy_id)
        assert done["status"] == "succeeded", done
        refused = client.post(f"/api/v1/replication/executions/{done['id']}/stop")
        assert refused.status_code == 409, refused.text
        assert "already finished (succeeded)" in refused.json()["detail"]
        unknown = client.post("/api/v1/replication/executions/replication-0-none/stop")
        assert unknown.status_code == 404, unknown.text
        assert (
            client.get(f"/api/v1/replication/executions/{done['id']}").json()["status"]
            == "succeeded"
        )
    assert manifest_digest(front.url, f"{project}/tool", "1") == digest


def test_an_execution_whose_workflow_is_terminated_reads_as_failed_with_why(
    site: Site, front: RegistryFront
) -> None:
    """Ended in Temporal, not by Moorage: the next read closes it instead of `running`."""
    project = f"term{secrets.token_hex(3)}"
    for n in range(3):
        push_image(site.url, f"{project}/app{n}", "1.0", [os.urandom(LAYER)], site.auth)
    policy_id = push_policy(site, front.url, project)
    with site.client() as client:
        execution_id = start_sending(client, front, policy_id)

        terminate_workflow(site, execution_id)

        [listed] = [
            e
            for e in client.get(
                "/api/v1/replication/executions", params={"policy_id": policy_id}
            ).json()["items"]
            if e["id"] == execution_id
        ]
        assert listed["status"] == "failed", listed
        assert listed["reason"] == "the execution's workflow was terminated", listed
        assert listed["finished_at"] is not None
        read = client.get(f"/api/v1/replication/executions/{execution_id}").json()
        assert read == listed
        results = tasks(client, execution_id)
        assert len(results) == 3
        not_run = [t for t in results if t["status"] == "failed"]
        assert not_run, results
        assert {t["status"] for t in results} <= {"copied", "failed"}, results
        for task in not_run:
            assert task["error"] == "not run: the execution's workflow was terminated", task
        assert read["failed"] == len(not_run), read
        # it is closed: a stop is now a conflict, not a second ending
        refused = client.post(f"/api/v1/replication/executions/{execution_id}/stop")
        assert refused.status_code == 409, refused.text
