"""Where the tests find the OCI client tools, failing loudly when one is missing.

Go-built tools (crane, oras, the conformance suite) live in the machine cache that
``scripts/install-tools`` fills; Debian-packaged ones (skopeo) come from ``PATH``.

``scripts/test`` runs the Go builds beside the tests. While they run, the builder keeps a
list of what it has still to make in ``$MOORAGE_TOOLS_DIR/go-builds.pending``: its first
line is ``pid <builder's PID>``, each further line a path relative to the tools directory
(``bin/crane``, ``k8s-openapi/swagger-v1.36.3.json``). A test that needs one of those
waits here until the builder has crossed it off (built or failed) or has stopped, with
its own timeout paused meanwhile: a test is timed on what it does, not on a build.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

#: How long a test waits, at most, for the builder to finish one tool.
BUILD_WAIT_SECONDS = float(os.environ.get("MOORAGE_TOOLS_WAIT_SECONDS", "3600"))
PENDING_FILE = "go-builds.pending"
_POLL_SECONDS = 1.0


class MissingToolError(RuntimeError):
    """A client tool the tests need is not installed."""


def tools_dir() -> Path:
    """The machine cache of tools: ``$MOORAGE_TOOLS_DIR`` (``~/.cache/moorage-tools``)."""
    base = os.environ.get("MOORAGE_TOOLS_DIR") or str(Path.home() / ".cache" / "moorage-tools")
    return Path(base)


def tools_bin_dir() -> Path:
    """The machine cache of Go-built tools: ``$MOORAGE_TOOLS_DIR/bin``."""
    return tools_dir() / "bin"


class _TimerPause:
    """Pauses the process's ``SIGALRM`` timer while any thread waits for a build.

    pytest-timeout times a test with that timer; a fixture may wait from a thread of its
    own (services started side by side), and several such waits may overlap. The first
    waiter stops the timer and the last one re-arms it with what was left of it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters = 0
        self._left = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if self._waiters == 0:
                self._left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
            self._waiters += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._waiters -= 1
            if self._waiters == 0 and self._left > 0:
                signal.setitimer(signal.ITIMER_REAL, self._left)


_timer_paused = _TimerPause()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _pending(base: Path) -> tuple[int, set[str]] | None:
    """The builder's PID and what it has still to build, or ``None`` when none runs."""
    try:
        lines = (base / PENDING_FILE).read_text().splitlines()
    except FileNotFoundError:
        return None
    if not lines or not lines[0].startswith("pid "):
        return None
    try:
        pid = int(lines[0].removeprefix("pid "))
    except ValueError:
        return None
    return pid, {line.strip() for line in lines[1:] if line.strip()}


def _waiting_for(relative: str, base: Path) -> bool:
    state = _pending(base)
    return state is not None and relative in state[1] and _alive(state[0])


def wait_for_build(relative: str, *, timeout: float | None = None) -> None:
    """Wait while the builder still has ``relative`` (under the tools directory) to make.

    Returns at once when no build runs or the path is not on its list. The process's
    ``SIGALRM`` timer (pytest-timeout's) is paused while any thread waits and re-armed
    with what was left of it afterwards.

    Raises:
        MissingToolError: the builder still had it to make after ``timeout`` seconds.
    """
    base = tools_dir()
    if not _waiting_for(relative, base):
        return
    limit = BUILD_WAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + limit
    with _timer_paused:
        while _waiting_for(relative, base):
            if time.monotonic() >= deadline:
                raise MissingToolError(
                    f"{relative} was still being built after {limit:.0f} s "
                    f"(see {base / PENDING_FILE})"
                )
            time.sleep(_POLL_SECONDS)


def built_file(relative: str) -> Path:
    """``relative`` under the tools directory, once the builder no longer has it to make."""
    wait_for_build(relative)
    return tools_dir() / relative


def find_tool(name: str) -> str:
    """Absolute path of the tool ``name`` from the tools cache, then ``PATH``.

    Waits first when the builder running beside the tests still has it to build.
    """
    cached = built_file(f"bin/{name}")
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which(name)
    if found is not None:
        return found
    raise MissingToolError(
        f"required tool {name!r} is neither in {tools_bin_dir()} nor on PATH: "
        "run scripts/install-tools (or scripts/test, which runs it)"
    )
