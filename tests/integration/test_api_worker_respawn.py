"""A killed API server worker is replaced, and its replacement serves.

granian respawns a worker that died (``respawn_failed_workers``). The new worker is forked
from ``moorage api`` as the first ones were, takes the framework that process built before
forking them (``cli.asgi.prebuild_framework``: the process never uses it itself, so each
respawn gets a fresh copy) and composes its own registry.
"""

from __future__ import annotations

import base64
import os
import signal
import time
from pathlib import Path

import pytest

from tests.services.moorage import start_moorage
from tests.services.sockets import ask_every_worker, wait_for_workers, worker_pids

pytestmark = pytest.mark.integration

WORKERS = 2
BOUND = 60.0


def test_a_killed_worker_is_replaced_by_one_that_serves(tmp_path: Path) -> None:
    server = start_moorage(
        tmp_path, {"MOORAGE_DATA_DIR": str(tmp_path / "data")}, ["--workers", "2"]
    )
    try:
        first = wait_for_workers(server.pid, server.port, WORKERS)
        assert len(first) == WORKERS, f"{len(first)} workers listen; {server.log_path}"
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + BOUND
        while True:
            now = worker_pids(server.pid, server.port)
            if len(now) == WORKERS and victim not in now:
                break
            assert time.monotonic() < deadline, f"workers {sorted(now)}; {server.log_path}"
            time.sleep(0.2)
        basic = base64.b64encode(f"{server.admin_username}:{server.admin_password}".encode())
        auth = {"Authorization": f"Basic {basic.decode()}"}
        answers = ask_every_worker(server.pid, server.port, "GET", "/v2/", auth)
        assert answers.keys() == now, f"answered by {sorted(answers)}, listening {sorted(now)}"
        statuses = {pid: [a.status for a in got] for pid, got in answers.items()}
        assert all(set(codes) == {200} for codes in statuses.values()), statuses
    finally:
        server.stop()
