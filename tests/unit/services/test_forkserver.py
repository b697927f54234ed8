"""The tests' fork server runs a command as ``python -m`` would, and reports its exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services import forkserver
from tests.services.forkserver import ForkServer, forkable, run_captured
from tests.services.process import spawn

if TYPE_CHECKING:
    from collections.abc import Iterator

PROBE = "tests.unit.services.forkserver_probe"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    started = ForkServer()
    try:
        yield started
    finally:
        started.stop()


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **extra}


def _report(log: Path) -> dict[str, object]:
    line = next(line for line in log.read_text().splitlines() if line.startswith("{"))
    report: dict[str, object] = json.loads(line)
    return report


def test_a_command_runs_with_its_arguments_environment_directory_and_log(
    server: ForkServer, tmp_path: Path
) -> None:
    log = tmp_path / "probe.log"
    process = server.spawn(PROBE, ["3", "0"], env=_env(PROBE="here"), cwd=tmp_path, log_path=log)
    assert process.wait(timeout=30) == 3
    assert process.returncode == 3
    assert _report(log) == {
        "argv": ["3", "0"],
        "cwd": str(tmp_path),
        "probe": "here",
        "session_leader": True,
        "main": "__main__",
        "stdin": "",
    }
    lines = log.read_text().splitlines()
    assert "to stderr" in lines
    assert lines[-1] == "bye", "exit handlers ran and their output was flushed"
    assert process.args == [sys.executable, "-m", PROBE, "3", "0"]


def test_unbuffered_output_is_in_the_log_while_the_command_runs(
    server: ForkServer, tmp_path: Path
) -> None:
    log = tmp_path / "probe.log"
    process = server.spawn(
        PROBE, ["0", "30"], env=_env(PYTHONUNBUFFERED="1"), cwd=tmp_path, log_path=log
    )
    try:
        deadline = time.monotonic() + 20
        while "to stderr" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _report(log)["argv"] == ["0", "30"]
        assert process.poll() is None
    finally:
        process.kill()
        assert process.wait(timeout=30) == -signal.SIGKILL


def test_wait_times_out_like_popen_and_a_signal_ends_the_command(
    server: ForkServer, tmp_path: Path
) -> None:
    process = server.spawn(
        PROBE, ["0", "30"], env=_env(), cwd=tmp_path, log_path=tmp_path / "probe.log"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    process.terminate()
    assert process.wait(timeout=30) == -signal.SIGTERM
    process.kill()  # after the end: nothing is signalled, nothing raised
    assert process.poll() == -signal.SIGTERM


def test_only_plain_commands_of_this_tree_are_forked(tmp_path: Path) -> None:
    python = sys.executable
    assert forkable([python, "-m", "cli.main", "api"], {"PYTHONUNBUFFERED": "1"}, REPO)
    assert forkable([python, "-m", "cli.main", "worker"], {}, None)
    assert forkable([python, "-m", "tests.services.faulty_worker", "--activity", "x"], {}, REPO)
    assert not forkable([python, "-m"], {}, REPO)
    assert not forkable([python, "-m", "cli.main"], {"PYTHONPATH": "/opt"}, REPO)
    assert not forkable([python, "-m", "cli.main"], {}, tmp_path)
    assert not forkable(["nsenter", "-m", python, "-m", "cli.main"], {}, REPO)
    assert not forkable([python, "-m", PROBE], {}, REPO)


def test_nothing_is_forked_outside_the_test_session(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [sys.executable, "-m", "cli.main", "api"]
    assert forkable(argv, {}, REPO)
    monkeypatch.setattr(forkserver, "_enabled", False)  # as in a benchmark's process
    assert not forkable(argv, {}, REPO)
    monkeypatch.setenv(forkserver.SWITCH, "0")
    forkserver.enable()
    assert not forkable(argv, {}, REPO)


def test_spawn_forks_a_moorage_command(tmp_path: Path) -> None:
    log = tmp_path / "help.log"
    process = spawn(
        "moorage --help",
        [sys.executable, "-m", "cli.main", "--help"],
        log_path=log,
        env=_env(),
        cwd=REPO,
    )
    assert isinstance(process.popen, forkserver.ForkedProcess)
    assert process.popen.wait(timeout=60) == 0
    assert "worker" in log.read_text()


def test_a_captured_run_returns_output_errors_and_status_like_subprocess_run(
    server: ForkServer, tmp_path: Path
) -> None:
    done = server.run(
        PROBE, ["5"], env=_env(PROBE="x"), cwd=tmp_path, timeout=30, input_text="given"
    )
    assert done.returncode == 5
    assert done.args == [sys.executable, "-m", PROBE, "5"]
    report = json.loads(done.stdout.splitlines()[0])
    assert (report["stdin"], report["probe"], report["cwd"]) == ("given", "x", str(tmp_path))
    assert done.stdout.splitlines()[-1] == "bye"
    assert done.stderr == "to stderr\n"


def test_a_captured_run_past_its_timeout_is_killed(server: ForkServer, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(PROBE, ["0", "30"], env=_env(), cwd=tmp_path, timeout=1)
    assert time.monotonic() - started < 20


def test_run_captured_forks_a_moorage_command() -> None:
    done = run_captured([sys.executable, "-m", "cli.main", "--help"], env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "worker" in done.stdout
    done = run_captured([sys.executable, "-m", "cli.main", "no-such"], env=_env(), timeout=60)
    assert done.returncode == 2
    assert "No such command" in done.stderr
