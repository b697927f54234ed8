"""The Moorage registry API (``python -m cli.main api``) as a subprocess for the tests.

The process gets the caller's ``MOORAGE_*`` settings and none inherited from the
shell, so a developer's own configuration never leaks into a test run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tests.services.forkserver import run_captured
from tests.services.http import answers
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
PASSWORD_VARIABLE = "MOORAGE_AUTH__ADMIN_PASSWORD"


@dataclass
class MoorageServer:
    """Where the registry answers, how to log in, and the means to stop it."""

    url: str
    host_port: str
    port: int
    admin_username: str
    admin_password: str
    env: dict[str, str]
    log_path: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


def start_moorage(
    workdir: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    prefix: Sequence[str] = (),
    *,
    root: Path = REPO_ROOT,
) -> MoorageServer:
    """Start the API on a free loopback port with ``env``; wait for ``GET /healthz``.

    ``args`` are extra options of ``moorage api`` (e.g. ``--workers 2``); ``prefix`` is a
    command that ends by running the command line after it (``exec "$@"``), so that the
    API's process id is the one started; ``root`` is the source tree it runs from (another
    checkout, for a benchmark's before and after).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    settings = dict(env)
    settings.setdefault(PASSWORD_VARIABLE, secrets.token_urlsafe(18))
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    process_env.update(settings)
    process_env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    process = spawn(
        "moorage api",
        [
            *prefix,
            sys.executable,
            "-m",
            "cli.main",
            "api",
            "--listen",
            f"{LOOPBACK}:{port}",
            *args,
        ],
        log_path=workdir / "moorage.log",
        env=process_env,
        cwd=root,
    )
    process.wait_until(
        partial(answers, LOOPBACK, port, "/healthz"),
        timeout=START_TIMEOUT,
        what="GET /healthz = 200",
    )
    host_port = f"{LOOPBACK}:{port}"
    return MoorageServer(
        url=f"http://{host_port}",
        host_port=host_port,
        port=port,
        admin_username=settings.get("MOORAGE_AUTH__ADMIN_USERNAME", "admin"),
        admin_password=settings[PASSWORD_VARIABLE],
        env=settings,
        log_path=process.log_path,
        process=process,
    )


def audit_verify(data_dir: Path, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``moorage audit verify`` on the installation in ``data_dir`` (SQLite default).

    ``prefix`` runs it through another command (e.g. ``nsenter`` into the API's mounts).
    """
    env = {"MOORAGE_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    return run_captured(
        [*prefix, sys.executable, "-m", "cli.main", "audit", "verify"],
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
