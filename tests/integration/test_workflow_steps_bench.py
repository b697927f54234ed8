"""bench.workflow_steps measures the dev server settings it names, on real dev servers."""

from __future__ import annotations

import pytest

from bench.workflow_steps import main

pytestmark = pytest.mark.integration


def test_each_journal_runs_on_a_server_with_its_settings() -> None:
    lines = main(["--children", "4", "--concurrency", "2", "--repeats", "1"])
    assert [line["journal"] for line in lines] == ["moorage", "sqlite-default"]
    modes = {line["journal"]: [run["journal_mode"] for run in line["runs"]] for line in lines}
    assert modes == {"moorage": ["wal"], "sqlite-default": ["delete"]}
    for line in lines:
        assert line["children"] == 4
        assert line["server_cpu_ms"] > 0
        assert line["wall_ms"] > 0
        assert line["ratio"] > 0
