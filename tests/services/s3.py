"""A real moto S3 server on the loopback address, for the S3 blob store's tests."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.services.http import answers
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn

READY_TIMEOUT = 30.0
ACCESS_KEY_ID = "moorage-test"
SECRET_ACCESS_KEY = "moorage-test-secret"  # moto accepts any credentials


@dataclass
class S3Server:
    """A running moto S3 server; :meth:`stop` ends its process only."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    pid: int
    _process: ManagedProcess = field(repr=False)

    def stop(self) -> None:
        """Terminate the server's PID (kill it if it lingers) and wait for it."""
        self._process.stop()


def moto_executable() -> str:
    """The ``moto_server`` next to this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise FileNotFoundError("moto_server not found; install moto[server]")
    return found


def start_moto(workdir: Path) -> S3Server:
    """Start ``moto_server`` on a free loopback port and wait until it answers HTTP.

    The server's output goes to ``workdir/moto.log``.
    """
    port = free_port()
    process = spawn(
        "moto_server",
        [moto_executable(), "-H", LOOPBACK, "-p", str(port)],
        log_path=workdir / "moto.log",
    )
    process.wait_until(
        lambda: answers(LOOPBACK, port, "/"), timeout=READY_TIMEOUT, what="answering HTTP"
    )
    return S3Server(
        endpoint_url=f"http://{LOOPBACK}:{port}",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        pid=process.pid,
        _process=process,
    )
