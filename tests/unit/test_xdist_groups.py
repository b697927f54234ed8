"""The suite's ``xdist_group`` marks keep a group on one worker (``scripts/test`` relies on it).

Tests that share an expensive service (Keycloak, the HA topology, the image build) carry
one group so that only one xdist worker starts it, and fault tests of one group never run
at the same time as each other. This runs a small suite the way ``scripts/test`` runs the
real one and checks where each test ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SUITE = """
import os, pathlib, pytest

pytestmark = pytest.mark.xdist_group("shared")

@pytest.mark.parametrize("index", range(8))
def test_grouped(index):
    pathlib.Path(os.environ["WHERE"], f"grouped-{index}").write_text(
        os.environ.get("PYTEST_XDIST_WORKER", "")
    )
"""


def test_a_group_runs_on_one_worker_of_two(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    where = tmp_path / "where"
    where.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-q", "test_suite.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"WHERE": str(where)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    workers = {path.name: path.read_text() for path in where.iterdir()}
    assert len(workers) == 8, json.dumps(workers)
    assert len(set(workers.values())) == 1, f"one group ran on several workers: {workers}"
