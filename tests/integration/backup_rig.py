"""Installations, workers, API servers and CLI calls for the backup tests.

Each installation is a real one (``sqlite-fs``: SQLite and the filesystem under the test's
directory; ``pg-s3``: a fresh PostgreSQL database and S3 bucket), with its own task queue
and the backup location the test names. Worker and API run as processes with the same
settings, like in production; the CLI talks to the API process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from cli.startup import prepare_installation
from core.settings import Settings
from tests.conftest import create_bucket
from tests.services.control_backends import worker_env
from tests.services.forkserver import run_captured
from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import ManagedProcess, spawn

if TYPE_CHECKING:
    import pytest

    from tests.services.temporal import TemporalServer

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
CLI_TIMEOUT = 300.0


def fs_location(root: Path, *, encrypted: bool) -> dict[str, Any]:
    location: dict[str, Any] = {"path": str(root)}
    if encrypted:
        location["encryption_key"] = KEY
    return location


def s3_location(request: pytest.FixtureRequest, *, encrypted: bool) -> dict[str, Any]:
    s3 = request.getfixturevalue("s3")
    bucket = create_bucket(s3, f"backups-{secrets.token_hex(4)}")
    location: dict[str, Any] = {"s3": {"bucket": bucket, "key_prefix": "site-a/"}}
    if encrypted:
        location["encryption_key"] = KEY
    return location


def installation(
    backend: str,
    root: Path,
    temporal: TemporalServer,
    request: pytest.FixtureRequest,
    *,
    password: str,
    backup: dict[str, Any],
    label: str,
    prepare: bool = True,
) -> Settings:
    """An installation on ``backend`` backing up to ``backup`` (prepared unless told)."""
    base: dict[str, Any] = {
        "data_dir": root / "data",
        "auth": {"admin_password": password, "create_project_on_push": True},
        "temporal": {"address": temporal.address, "task_queue": f"q-{uuid.uuid4().hex}"},
        "backup": backup,
    }
    s3 = request.getfixturevalue("s3") if backend == "pg-s3" or "s3" in backup else None
    if s3 is not None:
        base["s3"] = {
            "endpoint_url": s3.endpoint_url,
            "bucket": "unused",
            "access_key_id": s3.access_key_id,
            "secret_access_key": s3.secret_access_key,
        }
    if backend == "pg-s3":
        assert s3 is not None
        postgres = request.getfixturevalue("postgres")
        base["database_url"] = postgres.create_database(f"{label}_{secrets.token_hex(4)}")
        base["storage"] = "s3"
        base["s3"]["bucket"] = create_bucket(s3, f"{label}-{secrets.token_hex(4)}")
    settings = Settings(**base)
    if prepare:
        prepare_installation(settings)
    return settings


def process_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker, API or CLI process of ``settings``."""
    env = worker_env(settings, {"GC_EVERY_SECONDS": "0", "OUTBOX_POLL_SECONDS": "0.2"})
    backup = settings.backup
    if backup.path is not None:
        env["MOORAGE_BACKUP__PATH"] = backup.path
    if backup.s3 is not None:
        env["MOORAGE_BACKUP__S3__BUCKET"] = backup.s3.bucket
        env["MOORAGE_BACKUP__S3__KEY_PREFIX"] = backup.s3.key_prefix
    if backup.encryption_key is not None:
        env["MOORAGE_BACKUP__ENCRYPTION_KEY"] = backup.encryption_key.get_secret_value()
    if settings.storage != "s3" and settings.s3.secret_access_key is not None:
        env |= {
            "MOORAGE_S3__ENDPOINT_URL": str(settings.s3.endpoint_url),
            "MOORAGE_S3__ACCESS_KEY_ID": str(settings.s3.access_key_id),
            "MOORAGE_S3__SECRET_ACCESS_KEY": settings.s3.secret_access_key.get_secret_value(),
        }
    assert settings.auth.admin_password is not None
    env["MOORAGE_AUTH__ADMIN_PASSWORD"] = settings.auth.admin_password.get_secret_value()
    env["MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH"] = "true"
    return env


def start_worker(settings: Settings, log: Path) -> ManagedProcess:
    return spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=log,
        env=process_env(settings),
        cwd=REPO_ROOT,
    )


def start_api(settings: Settings, workdir: Path) -> MoorageServer:
    return start_moorage(workdir, process_env(settings), ["--workers", "1"])


@dataclass
class Site:
    """One installation with its worker and API processes."""

    settings: Settings
    api: MoorageServer
    worker: ManagedProcess
    processes: list[ManagedProcess] = field(default_factory=list)

    def stop(self) -> None:
        self.worker.stop()
        self.api.stop()

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, timeout=60)

    def cli_env(self) -> dict[str, str]:
        """The environment of a ``moorage`` command for this site (settings and API)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        env |= process_env(self.settings)
        return env | {
            "MOORAGE_URL": self.api.url,
            "MOORAGE_USERNAME": self.api.admin_username,
            "MOORAGE_PASSWORD": self.api.admin_password,
        }

    def moorage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``moorage <args>`` against this site's API (and its settings)."""
        env = self.cli_env()
        result = run_captured(
            [sys.executable, "-m", "cli.main", *args], cwd=REPO_ROOT, env=env, timeout=CLI_TIMEOUT
        )
        if check:
            assert result.returncode == 0, (
                f"moorage {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.moorage(*args).stdout)


def start_site(settings: Settings, workdir: Path) -> Site:
    worker = start_worker(settings, workdir / "worker.log")
    try:
        api = start_api(settings, workdir / "api")
    except BaseException:
        worker.stop()
        raise
    return Site(settings, api, worker)
