"""Replay recorded histories: a change that breaks a workflow's determinism fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.registered import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_has_a_recorded_history() -> None:
    assert {path.stem for path in HISTORIES} >= {
        "gc",
        "gc_summary",
        "event",
        "event_batch",
        "retention",
        "reap_uploads",
        "quota",
        "keys",
        "backup",
        "restore",
        "replication",
        "replication_artifact",
        "replication_stopped",
        "replication_in_place",
        # NOTE: the three before the plan became a local activity (PLAN_LOCALLY), kept
        "replication_remote_plan",
        "replication_stopped_remote_plan",
        "replication_in_place_remote_plan",
        # NOTE: the three before the tasks came in pages (PAGED_TASKS), kept
        "replication_unpaged",
        "replication_stopped_unpaged",
        "replication_in_place_unpaged",
        "replication_continued",
        "replication_continued_last",
        "scan",
        "scan_many",
        "scan_rematch",
        "scan_local",
        "scan_delegated",
        "scanner_api",
        "vulndb_import",
        "promotion",
        "preheat",
        # NOTE: the history before the tasks came in pages (PAGED_TASKS), kept
        "preheat_unpaged",
        "preheat_continued",
        "preheat_continued_last",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    result = await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure
