"""Start, watch and stop one local service process for the tests.

Every helper here is bounded: readiness waits take a timeout, and stopping a
process signals only the PID that was started, then waits, then kills.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tests.services.forkserver import spawn_forked

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40


class ServiceStartError(RuntimeError):
    """A service did not become ready; the message carries its log tail."""


def free_port() -> int:
    """Return a TCP port on the loopback address that is free right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on the loopback address that are free right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a log file (empty if it is missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ProcessHandle(Protocol):
    """What the tests use of a started process: :class:`subprocess.Popen` or a forked one."""

    pid: int
    args: Any
    returncode: int | Any  # None while it runs (as Popen types it)

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


@dataclass
class ManagedProcess:
    """One started process, its log file and how it is asked to stop."""

    name: str
    popen: ProcessHandle
    log_path: Path
    stop_signal: signal.Signals = signal.SIGTERM
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def failure(self, reason: str) -> ServiceStartError:
        """Build an error naming the service, the reason and its log tail."""
        tail = log_tail(self.log_path)
        return ServiceStartError(f"{self.name} (pid {self.pid}) {reason}; {self.log_path}:\n{tail}")

    def wait_until(
        self, ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll ``ready`` until it holds; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                raise self.failure(f"exited with code {code} before {what}")
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise self.failure(f"was not ready ({what}) within {timeout:.0f} s")
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Signal this PID only, wait for it, kill it if it lingers, run cleanups."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.send_signal(self.stop_signal)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        self.popen.kill()
                    self.popen.wait(timeout=timeout)
        finally:
            while self.cleanups:
                self.cleanups.pop()()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> ManagedProcess:
    """Start ``argv`` with stdout and stderr appended to ``log_path``.

    The child gets its own session so that a Ctrl-C in the terminal reaches
    pytest only, and pytest stops the child by its PID. ``python -m cli.main`` commands
    are forked from this process's fork server (``tests.services.forkserver``), which has
    their modules imported already, when their options allow it.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command_env = dict(os.environ if env is None else env)
    forked = None if user is not None else spawn_forked(argv, command_env, cwd, log_path)
    if forked is not None:
        return ManagedProcess(name=name, popen=forked, log_path=log_path, stop_signal=stop_signal)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=command_env,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            start_new_session=True,
        )
    return ManagedProcess(name=name, popen=popen, log_path=log_path, stop_signal=stop_signal)


def run_checked(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout: float,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run a set-up command to completion, appending its output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ if env is None else env),
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceStartError(
                f"{name} took more than {timeout:.0f} s; log {log_path}:\n{log_tail(log_path)}"
            ) from exc
    if result.returncode != 0:
        raise ServiceStartError(
            f"{name} failed with code {result.returncode}; log {log_path}:\n{log_tail(log_path)}"
        )
