"""Workflows started from outbox events carry Moorage's search attributes.

A push through the app writes outbox events; the dispatcher batches them for the built-in
log subscriber and starts the batch's run on a real Temporal dev server; the run (its
batch has one repository) is then found by a visibility query.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path

import anyio.to_thread
import pytest
from litestar.testing import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.client import Client

from activities.search_attributes import DIGEST, PROJECT, REPOSITORY
from adapters.clock import SystemClock
from api.app import create_app
from cli.outbox_task import build_outbox_dispatcher
from cli.search_attributes import ensure_search_attributes
from cli.startup import prepare_installation
from core import events
from core.control_settings import ControlSettings
from core.settings import AuthSettings, Settings, TemporalSettings
from core.subscribers import LOG, builtin_subscribers
from storage.db.repos.outbox import BATCH
from tests.api.oci import OCIClient, unique_project
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
#: Visibility lags behind a start: how long a query may take to see it.
VISIBILITY_BOUND = 20.0
#: Most dispatch rounds one push needs.
MAX_ROUNDS = 20


def _settings(root: Path, temporal: TemporalServer, password: str) -> Settings:
    settings = Settings(
        data_dir=root / "data",
        auth=AuthSettings(admin_password=SecretStr(password), create_project_on_push=True),
        temporal=TemporalSettings(address=temporal.address, task_queue=f"q-{uuid.uuid4().hex}"),
        control=ControlSettings(event_batch_seconds=0),
    )
    prepare_installation(settings)
    return settings


def _pushed_event_id(oci: OCIClient, digest: str) -> int:
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    with registry.metadata.read() as session:
        pending = session.outbox.pending(10_000)
    found = [e for e in pending if e.kind == events.MANIFEST_PUSHED and e.digest == digest]
    assert len(found) == 1, pending
    event_id: int = found[0].id
    return event_id


def _batch_run(oci: OCIClient, event_id: int) -> str:
    """The workflow id of the log subscriber's batch holding the event."""
    registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    query = select(BATCH.c.workflow_id).where(
        BATCH.c.subscriber == LOG.kind,
        BATCH.c.first_event_id <= event_id,
        BATCH.c.last_event_id >= event_id,
    )
    with registry.metadata.read() as session:
        return str(session._c.execute(query).scalar_one())


async def _ids_matching(client: Client, query: str, expected: str) -> list[str]:
    """Workflow ids the query finds, polled until ``expected`` is among them (bounded)."""
    ids: list[str] = []
    async with asyncio.timeout(VISIBILITY_BOUND):
        while expected not in ids:
            ids = [run.id async for run in client.list_workflows(query)]
            if expected not in ids:
                await asyncio.sleep(0.2)
    return ids


async def test_dispatched_runs_are_found_by_repository(
    tmp_path: Path, temporal_server: TemporalServer
) -> None:
    password = secrets.token_urlsafe(12)
    settings = _settings(tmp_path, temporal_server, password)
    client = await Client.connect(temporal_server.address)
    assert await ensure_search_attributes(client) == []  # the dev server registered them
    project = unique_project()
    repo = f"{project}/app"
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        pushed = await anyio.to_thread.run_sync(oci.push_image, repo, "v1")
        event_id = await anyio.to_thread.run_sync(_pushed_event_id, oci, pushed.digest)
        registry = http.app.state["registry"]
        dispatcher = build_outbox_dispatcher(
            settings, registry.metadata, builtin_subscribers(), SystemClock()
        )
        for _ in range(MAX_ROUNDS):
            if await dispatcher.dispatch_once() == 0:
                break
        workflow_id = await anyio.to_thread.run_sync(_batch_run, oci, event_id)
    try:
        found = await _ids_matching(client, f'MoorageRepository = "{repo}"', workflow_id)
        other = await client.count_workflows(f'MoorageRepository = "{project}/other"')
        by_digest = await _ids_matching(client, f'MoorageDigest = "{pushed.digest}"', workflow_id)
        described = await client.get_workflow_handle(workflow_id).describe()
    finally:
        for run in [run async for run in client.list_workflows(f'MoorageProject = "{project}"')]:
            await client.get_workflow_handle(run.id).terminate("test done")
    assert workflow_id.startswith(f"events-log-{repo}-")  # named after subscriber and subject
    assert workflow_id in found
    assert other.count == 0
    assert workflow_id in by_digest
    attributes = described.typed_search_attributes
    assert attributes.get(PROJECT) == project
    assert attributes.get(REPOSITORY) == repo
    assert attributes.get(DIGEST) == pushed.digest
