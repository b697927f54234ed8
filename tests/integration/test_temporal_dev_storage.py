"""A dev server's database made before Moorage's SQLite pragmas is switched, content kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.services.temporal import journal_mode, start_temporal

pytestmark = pytest.mark.integration


async def _start_unpolled(address: str, workflow_id: str) -> None:
    client = await Client.connect(address)
    await client.start_workflow("never-polled", id=workflow_id, task_queue="nobody-polls")


async def _status(address: str, workflow_id: str) -> WorkflowExecutionStatus | None:
    client = await Client.connect(address)
    return (await client.get_workflow_handle(workflow_id).describe()).status


def test_a_database_of_the_default_journal_is_switched_to_wal_with_its_content(
    tmp_path: Path,
) -> None:
    old = start_temporal(tmp_path, sqlite_pragmas=False)
    try:
        asyncio.run(_start_unpolled(old.address, "made-before"))
    finally:
        old.stop()
    assert journal_mode(tmp_path / "temporal.db") == "delete"

    new = start_temporal(tmp_path, old.port)
    try:
        assert journal_mode(tmp_path / "temporal.db") == "wal"
        assert asyncio.run(_status(new.address, "made-before")) is WorkflowExecutionStatus.RUNNING
    finally:
        new.stop()
