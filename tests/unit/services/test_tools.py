"""Tests wait for a tool that the Go builds beside them still have to make, and only then."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.services import tools

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def tools_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOORAGE_TOOLS_DIR", str(tmp_path))
    monkeypatch.setattr(tools, "_POLL_SECONDS", 0.02)
    (tmp_path / "bin").mkdir()
    return tmp_path


@pytest.fixture
def builder() -> Iterator[int]:
    """A live process standing in for the build queue."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def alarm() -> Iterator[float]:
    """What is left of the test's ``SIGALRM`` timer (one is armed if none runs)."""
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    if left > 0:
        yield left
        return
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        yield 300.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def pending(base: Path, pid: int, *paths: str) -> None:
    (base / tools.PENDING_FILE).write_text("".join(f"{line}\n" for line in (f"pid {pid}", *paths)))


def make_tool(base: Path, name: str) -> Path:
    path = base / "bin" / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def later(seconds: float, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_tool_being_built_is_waited_for_until_the_queue_crosses_it_off(tools_dir, builder):
    pending(tools_dir, builder, "bin/crane", "bin/weed")

    def built() -> None:
        make_tool(tools_dir, "crane")
        pending(tools_dir, builder, "bin/weed")

    thread = later(0.5, built)
    began = time.monotonic()
    found = tools.find_tool("crane")
    thread.join()
    assert time.monotonic() - began >= 0.5
    assert found == str(tools_dir / "bin" / "crane")


def test_a_tool_not_on_the_list_is_found_at_once(tools_dir, builder):
    make_tool(tools_dir, "oras")
    pending(tools_dir, builder, "bin/weed")
    began = time.monotonic()
    assert tools.find_tool("oras") == str(tools_dir / "bin" / "oras")
    assert time.monotonic() - began < 0.5


def test_a_stopped_queue_is_not_waited_for_and_its_missing_tool_is_reported(tools_dir):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    pending(tools_dir, int(finished.stdout), "bin/no-such-tool-here")
    began = time.monotonic()
    with pytest.raises(tools.MissingToolError, match="no-such-tool-here"):
        tools.find_tool("no-such-tool-here")
    assert time.monotonic() - began < 0.5


def test_a_failed_build_ends_the_wait_with_the_tool_missing(tools_dir, builder):
    pending(tools_dir, builder, "bin/no-such-tool-here")
    thread = later(0.3, lambda: pending(tools_dir, builder))
    with pytest.raises(tools.MissingToolError, match="neither in"):
        tools.find_tool("no-such-tool-here")
    thread.join()


def test_the_wait_is_bounded(tools_dir, builder):
    pending(tools_dir, builder, "k8s-openapi/swagger.json")
    with pytest.raises(tools.MissingToolError, match="still being built after"):
        tools.wait_for_build("k8s-openapi/swagger.json", timeout=0.2)


def test_the_test_s_own_timeout_does_not_run_while_it_waits(tools_dir, builder, alarm):
    pending(tools_dir, builder, "bin/crane")
    thread = later(0.6, lambda: pending(tools_dir, builder))
    tools.wait_for_build("bin/crane")
    thread.join()
    assert signal.getitimer(signal.ITIMER_REAL)[0] > alarm - 0.3


def test_waits_from_threads_side_by_side_pause_the_timeout_until_the_last_ends(
    tools_dir, builder, alarm
):
    pending(tools_dir, builder, "bin/weed", "bin/crane")
    waits = [
        threading.Thread(target=tools.wait_for_build, args=(name,))
        for name in ("bin/weed", "bin/crane")
    ]
    for thread in waits:
        thread.start()
    time.sleep(0.2)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    pending(tools_dir, builder, "bin/weed")
    time.sleep(0.3)
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0, "one wait still runs"
    pending(tools_dir, builder)
    for thread in waits:
        thread.join()
    assert signal.getitimer(signal.ITIMER_REAL)[0] > alarm - 0.3


def test_a_file_the_queue_makes_is_waited_for_too(tools_dir, builder):
    relative = "k8s-openapi/swagger-v1.json"
    pending(tools_dir, builder, relative)

    def fetched() -> None:
        (tools_dir / "k8s-openapi").mkdir()
        (tools_dir / relative).write_text("{}")
        (tools_dir / tools.PENDING_FILE).unlink()

    thread = later(0.3, fetched)
    path = tools.built_file(relative)
    thread.join()
    assert path.read_text() == "{}"
