"""``moorage dev`` end to end: Temporal, worker and API from one command, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.contracts import DEFAULT_TASK_QUEUE, ReapUploadsInput, ReapUploadsResult
from cli.password import PASSWORD_FILE
from cli.schedules import REAP_UPLOADS_SCHEDULE_ID
from tests.services.http import answers
from tests.services.process import LOOPBACK, ManagedProcess, free_port, port_accepts, spawn
from tests.services.temporal import journal_mode
from workflows.uploads import ReapUploadsWorkflow

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def start_dev(
    tmp_path: Path, data_dir: Path, name: str, ports: tuple[int, int, int] | None = None
) -> tuple[ManagedProcess, int, int, int]:
    port, temporal_port, ui_port = ports or (free_port(), free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = spawn(
        "moorage dev",
        [
            sys.executable,
            "-m",
            "cli.main",
            "dev",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"{LOOPBACK}:{port}",
            "--temporal-port",
            str(temporal_port),
            "--temporal-ui-port",
            str(ui_port),
        ],
        log_path=tmp_path / f"{name}.log",
        env=env,
        cwd=REPO_ROOT,
    )
    return process, port, temporal_port, ui_port


def temporal_pid(log: Path) -> int:
    match = re.search(r"Temporal dev server started \(pid (\d+)\)", log.read_text(encoding="utf-8"))
    assert match, log.read_text(encoding="utf-8")
    return int(match.group(1))


def temporal_pids(log: Path) -> list[int]:
    """Every Temporal dev server PID the log announces, in order."""
    text = log.read_text(encoding="utf-8")
    return [int(pid) for pid in re.findall(r"Temporal dev server started \(pid (\d+)\)", text)]


async def reap_through_temporal(
    temporal_port: int, workflow_id: str | None = None
) -> ReapUploadsResult:
    """Run the reaper workflow on the embedded worker, with the real activity."""
    client = await Client.connect(f"{LOOPBACK}:{temporal_port}")
    # NOTE: /healthz answers before the worker has created its schedules; wait (bounded).
    for _ in range(300):
        try:
            await client.get_schedule_handle(REAP_UPLOADS_SCHEDULE_ID).describe()
            break
        except RPCError:
            await asyncio.sleep(0.1)
    await client.get_schedule_handle(REAP_UPLOADS_SCHEDULE_ID).describe()
    return await client.execute_workflow(
        ReapUploadsWorkflow.run,
        ReapUploadsInput(older_than_seconds=3600),
        id=workflow_id or f"test-reap-{uuid.uuid4()}",
        task_queue=DEFAULT_TASK_QUEUE,
        execution_timeout=timedelta(seconds=60),
    )


async def workflow_status(temporal_port: int, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status the dev server now reports for ``workflow_id``."""
    client = await Client.connect(f"{LOOPBACK}:{temporal_port}")
    return (await client.get_workflow_handle(workflow_id).describe()).status


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for a reaper that never comes does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gc_completes(port: int, data_dir: Path) -> None:
    """A GC run requested through the API is carried out by the worker (bounded)."""
    password = (data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()
    with httpx.Client(base_url=f"http://{LOOPBACK}:{port}", auth=("admin", password)) as http:
        started = http.post("/api/v1/system/gc", json={"review_delay_seconds": 0})
        assert started.status_code == 202, started.text
        url = f"/api/v1/system/gc/{started.json()['id']}"
        deadline = time.monotonic() + START_TIMEOUT
        while (state := http.get(url).json()["state"]) in {"queued", "running"}:
            assert time.monotonic() < deadline, f"the GC run is still {state}"
            time.sleep(0.3)
    assert state == "completed"


def wait_ready(process: ManagedProcess, port: int) -> None:
    ready = partial(answers, LOOPBACK, port, "/healthz")
    process.wait_until(ready, timeout=START_TIMEOUT, what="GET /healthz = 200")


def terminate(process: ManagedProcess) -> None:
    process.popen.send_signal(signal.SIGTERM)
    code = process.popen.wait(timeout=STOP_TIMEOUT)
    assert code == 0, process.log_path.read_text(encoding="utf-8")


def run_until_ready_then_terminate(tmp_path: Path, data_dir: Path, name: str) -> str:
    """Start ``moorage dev``, check every piece answers, SIGTERM it; return its output."""
    process, port, temporal_port, ui_port = start_dev(tmp_path, data_dir, name)
    try:
        ready = partial(answers, LOOPBACK, port, "/healthz")
        process.wait_until(ready, timeout=START_TIMEOUT, what="GET /healthz = 200")
        ui = partial(answers, LOOPBACK, ui_port, "/")
        process.wait_until(ui, timeout=START_TIMEOUT, what="the Temporal UI answers")
        assert answers(LOOPBACK, port, "/readyz")
        pid = temporal_pid(process.log_path)
        assert pid_alive(pid)
        result = asyncio.run(reap_through_temporal(temporal_port))
        assert result == ReapUploadsResult(sessions_reaped=0, storage_leftovers_aborted=0)

        process.popen.send_signal(signal.SIGTERM)
        code = process.popen.wait(timeout=STOP_TIMEOUT)
        output = process.log_path.read_text(encoding="utf-8")
        assert code == 0, output
        assert not pid_alive(pid), "the Temporal dev server outlived moorage dev"
        assert not port_accepts(temporal_port)
        assert not port_accepts(port)
    except (AssertionError, subprocess.TimeoutExpired):
        print(process.log_path.read_text(encoding="utf-8"))
        raise
    finally:
        process.stop()
    return output


def test_dev_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = run_until_ready_then_terminate(tmp_path, data_dir, "first")
    password = (data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()
    assert password in first
    assert (data_dir / "temporal" / "temporal.db").is_file()
    # NOTE: a write-ahead log synced at checkpoints, as Moorage's own SQLite
    assert journal_mode(data_dir / "temporal" / "temporal.db") == "wal"

    second = run_until_ready_then_terminate(tmp_path, data_dir, "second")
    assert password not in second
    assert str(data_dir.resolve() / PASSWORD_FILE) in second


def test_dev_restarts_a_temporal_server_that_died(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, port, temporal_port, _ = start_dev(tmp_path, data_dir, "supervised")
    try:
        wait_ready(process, port)
        # The API answers before the worker has finished starting; kill only once both run.
        process.wait_until(
            lambda: "Moorage registry:" in process.log_path.read_text(encoding="utf-8"),
            timeout=START_TIMEOUT,
            what="the API and the worker both started",
        )
        done_before = f"test-reap-before-kill-{uuid.uuid4()}"
        asyncio.run(reap_through_temporal(temporal_port, done_before))
        (first,) = temporal_pids(process.log_path)
        os.kill(first, signal.SIGKILL)
        restarted = partial(lambda: len(temporal_pids(process.log_path)) == 2)
        process.wait_until(restarted, timeout=START_TIMEOUT, what="the server restarted")
        second = temporal_pids(process.log_path)[1]
        assert "restarting it" in process.log_path.read_text(encoding="utf-8")
        gc_completes(port, data_dir)
        # NOTE: what the server committed before its kill -9 is still there
        status = asyncio.run(workflow_status(temporal_port, done_before))
        assert status is WorkflowExecutionStatus.COMPLETED
        assert pid_alive(second)
        terminate(process)
        assert not pid_alive(second)
    except (AssertionError, subprocess.TimeoutExpired):
        print(process.log_path.read_text(encoding="utf-8"))
        raise
    finally:
        process.stop()


def test_dev_after_a_kill_replaces_the_orphaned_temporal_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    crashed, port, temporal_port, ui_port = start_dev(tmp_path, data_dir, "crashed")
    try:
        wait_ready(crashed, port)
        orphan = temporal_pid(crashed.log_path)
        crashed.popen.kill()
        crashed.popen.wait(timeout=STOP_TIMEOUT)
        assert pid_alive(orphan)  # NOTE: the crash left the server running
    finally:
        crashed.stop()
    process, _, _, _ = start_dev(tmp_path, data_dir, "again", (port, temporal_port, ui_port))
    try:
        wait_ready(process, port)
        assert not pid_alive(orphan), "the orphan still runs"
        (own,) = temporal_pids(process.log_path)
        assert own != orphan
        gc_completes(port, data_dir)
        terminate(process)
        assert not pid_alive(own)
        assert not (data_dir / "temporal" / "server.pid").exists()
    except (AssertionError, subprocess.TimeoutExpired):
        print(process.log_path.read_text(encoding="utf-8"))
        raise
    finally:
        process.stop()
        if pid_alive(orphan):
            os.kill(orphan, signal.SIGKILL)
