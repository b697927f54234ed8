"""An execution larger than one workflow run may hold, on a real Temporal server.

Temporal ends a run whose history passes the server's event limit (51,200 by default):
an execution that ran every artifact as a child of one run would fail at about ten
thousand artifacts. Here the dev server's limit is lowered to :data:`HISTORY_LIMIT`
events and the site reads :data:`PAGE` tasks at a time and continues as a new run every
:data:`PER_RUN` artifacts; a pull of :data:`IMAGES` images, whose history taken together
is larger than the limit, completes with every image copied, in runs that each stay
below it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.replication.rig import Site, manifest_digest, push_image, run_policy, start_site, tasks
from tests.services.temporal import TemporalServer, start_temporal

pytestmark = pytest.mark.integration

HISTORY_LIMIT = 120
IMAGES = 24
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
    found = start_site(
        tmp_path_factory.mktemp("large-site"),
        limited_temporal.address,
        MOORAGE_REPLICATION__TASKS_PER_PAGE=str(PAGE),
        MOORAGE_REPLICATION__TASKS_PER_RUN=str(PER_RUN),
    )
    yield found
    found.stop()


def runs_of(address: str, workflow_id: str) -> list[tuple[WorkflowExecutionStatus | None, int]]:
    """Each run of ``workflow_id`` (oldest first): its status and its history's events."""

    async def listed() -> list[tuple[WorkflowExecutionStatus | None, int]]:
        client = await Client.connect(address)
        found = []
        async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
            handle = client.get_workflow_handle(workflow_id, run_id=run.run_id)
            history = await handle.fetch_history()
            found.append((run.start_time, run.status, len(history.events)))
        return [(status, events) for _, status, events in sorted(found, key=lambda r: r[0])]

    return asyncio.run(listed())


def test_an_execution_past_the_history_limit_continues_as_new_runs_and_copies_everything(
    site: Site, docker_registry: Any, limited_temporal: TemporalServer, tmp_path: Path
) -> None:
    del tmp_path
    source = f"big{secrets.token_hex(3)}"
    pushed = {
        f"{source}/app{number:02d}": push_image(
            docker_registry.url, f"{source}/app{number:02d}", "1", [secrets.token_bytes(64)]
        )
        for number in range(IMAGES)
    }
    with site.client() as client:
        endpoint = f"ep-{secrets.token_hex(4)}"
        body = {"name": endpoint, "url": docker_registry.url, "type": "distribution"}
        assert client.post("/api/v1/registries", json=body).status_code == 201
        project = f"dst{secrets.token_hex(3)}"
        assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
        made = client.post(
            "/api/v1/replication/policies",
            json={
                "name": f"p-{secrets.token_hex(4)}",
                "direction": "pull",
                "endpoint": endpoint,
                "repositories": f"{source}/**",
                "prefix": project,
                "concurrency": 4,
            },
        )
        assert made.status_code == 201, made.text

        done = run_policy(client, made.json()["id"])

        assert done["status"] == "succeeded", done
        found = tasks(client, done["id"])
    assert sorted((t["source"], t["status"]) for t in found) == [
        (name, "copied") for name in sorted(pushed)
    ]
    for name, digest in pushed.items():
        assert manifest_digest(site.url, f"{project}/{name}", "1", site.auth) == digest, name

    runs = runs_of(limited_temporal.address, done["id"])
    statuses = [status for status, _ in runs]
    assert statuses == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (IMAGES // PER_RUN - 1) + [
        WorkflowExecutionStatus.COMPLETED
    ]
    assert all(events < HISTORY_LIMIT for _, events in runs), runs
    assert sum(events for _, events in runs) > HISTORY_LIMIT, runs
