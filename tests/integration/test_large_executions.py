"""Executions larger than one workflow run may hold, on a real Temporal server.

Temporal ends a run whose history passes the server's event limit (51,200 by default):
an execution that ran every artifact inside one run would fail at a few thousand
(preheat, about 12 events an artifact) to seven thousand (replication, about 7) artifacts.
Here the dev server's limit is lowered to :data:`HISTORY_LIMIT` events and the site reads
:data:`PAGE` tasks at a time and continues as a new run every :data:`PER_RUN`; a
replication pull and a preheat, each with a history taken together larger than the
limit, complete with every artifact handled, in runs that each stay below it; a stop
reaches the run an execution continued into.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.replication.rig import (
    Site,
    finished,
    manifest_digest,
    push_image,
    run_policy,
    start_site,
    tasks,
    wait_for,
)
from tests.services.p2p_standins import KrakenStandIn, start_kraken
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration

HISTORY_LIMIT = 120
PAGE = 3
PER_RUN = 6


@pytest.fixture(scope="module")
def limited_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    server = start_temporal(
        tmp_path_factory.mktemp("limited-temporal"),
        dynamic_config={"limit.historyCount.error": HISTORY_LIMIT},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, limited_temporal: TemporalServer
) -> Iterator[Site]:
    pages = {"TASKS_PER_PAGE": str(PAGE), "TASKS_PER_RUN": str(PER_RUN)}
    found = start_site(
        tmp_path_factory.mktemp("large-site"),
        limited_temporal.address,
        **{f"MOORAGE_{part}__{key}": value for part in ("REPLICATION", "PREHEAT")
           for key, value in pages.items()},
        MOORAGE_PREHEAT__POLL_INITIAL_SECONDS="0.2",
        MOORAGE_PREHEAT__POLL_MAX_SECONDS="1",
    )  # fmt: skip
    yield found
    found.stop()


#: Each run of an execution, oldest first: its status and its history's length in events.
Runs = list[tuple[WorkflowExecutionStatus | None, int]]


def runs_of(address: str, workflow_id: str) -> Runs:
    """Each run of ``workflow_id`` (oldest first): its status and its history's events."""

    async def listed() -> Runs:
        client = await Client.connect(address)
        found = []
        async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
            handle = client.get_workflow_handle(workflow_id, run_id=run.run_id)
            history = await handle.fetch_history()
            found.append((run.start_time, run.status, len(history.events)))
        return [(status, events) for _, status, events in sorted(found, key=lambda r: r[0])]

    return asyncio.run(listed())


def closed_runs(address: str, workflow_id: str) -> Runs:
    """:func:`runs_of` once the newest run has closed (a bounded wait).

    An execution records its outcome (an activity) before its run ends, so right after the
    API reads it finished or stopped the newest run can still be RUNNING for a workflow task.
    """

    def closed() -> Runs | None:
        found = runs_of(address, workflow_id)
        return found if found and found[-1][0] is not WorkflowExecutionStatus.RUNNING else None

    runs: Runs = wait_for(closed, f"the newest run of {workflow_id} to close")
    return runs


def assert_continued(address: str, workflow_id: str, artifacts: int) -> None:
    """The execution ran as one run per ``PER_RUN`` artifacts, each below the limit."""
    runs = closed_runs(address, workflow_id)
    continued = -(-artifacts // PER_RUN) - 1
    assert [status for status, _ in runs] == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (
        continued
    ) + [WorkflowExecutionStatus.COMPLETED], runs
    assert all(events < HISTORY_LIMIT for _, events in runs), runs
    assert sum(events for _, events in runs) > HISTORY_LIMIT, runs


def pull_policy(client: httpx.Client, url: str, source: str, project: str, **settings: int) -> int:
    """A pull policy of ``source/**`` from the registry at ``url`` into the new ``project``."""
    endpoint = f"ep-{secrets.token_hex(4)}"
    body = {"name": endpoint, "url": url, "type": "distribution"}
    assert client.post("/api/v1/registries", json=body).status_code == 201
    assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
    made = client.post(
        "/api/v1/replication/policies",
        json={
            "name": f"p-{secrets.token_hex(4)}",
            "direction": "pull",
            "endpoint": endpoint,
            "repositories": f"{source}/**",
            "prefix": project,
            **settings,
        },
    )
    assert made.status_code == 201, made.text
    policy_id: int = made.json()["id"]
    return policy_id


def test_a_replication_past_the_history_limit_continues_as_new_and_copies_everything(
    site: Site, docker_registry: Any, limited_temporal: TemporalServer
) -> None:
    images = 24
    source = f"big{secrets.token_hex(3)}"
    pushed = {
        f"{source}/app{number:02d}": push_image(
            docker_registry.url, f"{source}/app{number:02d}", "1", [secrets.token_bytes(64)]
        )
        for number in range(images)
    }
    project = f"dst{secrets.token_hex(3)}"
    with site.client() as client:
        policy_id = pull_policy(client, docker_registry.url, source, project, concurrency=4)
        done = run_policy(client, policy_id)

        assert done["status"] == "succeeded", done
        found = tasks(client, done["id"])
    assert sorted((t["source"], t["status"]) for t in found) == [
        (name, "copied") for name in sorted(pushed)
    ]
    for name, digest in pushed.items():
        assert manifest_digest(site.url, f"{project}/{name}", "1", site.auth) == digest, name
    assert_continued(limited_temporal.address, done["id"], images)


@pytest.fixture
def kraken() -> Iterator[KrakenStandIn]:
    server = start_kraken()
    yield server
    server.stop()


def _preheat_finished(client: httpx.Client, url: str) -> dict[str, Any] | None:
    response = client.get(url)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return None if body["status"] == "running" else body


def test_a_preheat_past_the_history_limit_continues_as_new_and_notifies_every_image(
    site: Site, kraken: KrakenStandIn, limited_temporal: TemporalServer
) -> None:
    images = 16
    project = f"ph{secrets.token_hex(4)}"
    pushed = {
        f"{project}/app{number:02d}": push_image(
            site.url, f"{project}/app{number:02d}", "v1", [secrets.token_bytes(64)], site.auth
        )
        for number in range(images)
    }
    with site.client() as client:
        instance = client.post(
            "/api/v1/p2p/instances",
            json={"name": f"kr-{project}", "vendor": "kraken", "endpoint": kraken.url},
        )
        assert instance.status_code == 201, instance.text
        policy = client.post(
            f"/api/v1/projects/{project}/preheat/policies",
            json={"name": "all", "instance": f"kr-{project}"},
        )
        assert policy.status_code == 201, policy.text
        base = f"/api/v1/projects/{project}/preheat"
        started = client.post(f"{base}/policies/{policy.json()['id']}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]

        done = wait_for(
            lambda: _preheat_finished(client, f"{base}/executions/{execution_id}"),
            "the preheat execution",
        )

        assert done["status"] == "succeeded", done
        listed = client.get(f"{base}/executions/{execution_id}/tasks", params={"limit": 100})
        assert listed.status_code == 200, listed.text
    assert sorted((t["repository"], t["status"]) for t in listed.json()["items"]) == [
        (name, "succeeded") for name in sorted(pushed)
    ]
    notified = {
        (n["events"][0]["target"]["repository"], n["events"][0]["target"]["digest"])
        for n in kraken.received()
    }
    assert notified == set(pushed.items())
    assert_continued(limited_temporal.address, execution_id, images)


def test_a_stop_reaches_the_run_an_execution_continued_into(
    site: Site, docker_registry: Any, limited_temporal: TemporalServer
) -> None:
    images = 12
    source = f"stop{secrets.token_hex(3)}"
    for number in range(images):
        name = f"{source}/app{number:02d}"
        push_image(docker_registry.url, name, "1", [secrets.token_bytes(32 * 1024)])
    with site.client() as client:
        # two seconds an artifact
        policy_id = pull_policy(
            client, docker_registry.url, source, f"dst{secrets.token_hex(3)}",
            concurrency=2, bandwidth_kbps=16,
        )  # fmt: skip
        started = client.post(f"/api/v1/replication/policies/{policy_id}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]

        def continued() -> bool:
            runs = runs_of(limited_temporal.address, execution_id)
            return any(status is WorkflowExecutionStatus.CONTINUED_AS_NEW for status, _ in runs)

        wait_for(continued, "the execution's first continued run", poll=0.5)
        stopped = client.post(f"/api/v1/replication/executions/{execution_id}/stop")
        assert stopped.status_code == 202, stopped.text
        done = wait_for(lambda: finished(client, execution_id), "the stop to settle")
        assert done["status"] == "stopped", done
        found = sorted(tasks(client, execution_id), key=lambda t: t["id"])

    statuses = [t["status"] for t in found]
    # the first run copied its six before it continued; the stop left nothing pending
    assert statuses[:PER_RUN] == ["copied"] * PER_RUN, statuses
    assert "pending" not in statuses, statuses
    assert "stopped" in statuses, statuses
    runs = closed_runs(limited_temporal.address, execution_id)
    assert runs[-1][0] is WorkflowExecutionStatus.CANCELED, runs
    assert all(status is WorkflowExecutionStatus.CONTINUED_AS_NEW for status, _ in runs[:-1])
