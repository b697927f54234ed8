"""The admin account and the first signing key are made once, before API workers start."""

from __future__ import annotations

import os
import re
import secrets
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from core.passwords import verify_password
from tests.services.http import answers
from tests.services.moorage import PASSWORD_VARIABLE, REPO_ROOT, START_TIMEOUT
from tests.services.postgres import Postgres
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn

WORKERS = 4
#: The password is URL-safe base64; in a JSON log line a closing quote follows it.
_CREATED = re.compile(r"created user 'admin' with password ([A-Za-z0-9_-]+)")
#: Logged by each API worker process once its app (``cli.asgi.app``) is built.
_BUILT = re.compile(r"API worker process (\d+) built its app")


def _database_url(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{data_dir / 'moorage.db'}"
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.create_database(f"boot_{secrets.token_hex(4)}")


def _start_api(
    workdir: Path, name: str, env: dict[str, str], workers: int
) -> tuple[ManagedProcess, int]:
    """Start ``moorage api --workers N`` with ``env`` and no admin password; and its port."""
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    process_env |= env | {"PYTHONUNBUFFERED": "1"}
    assert PASSWORD_VARIABLE not in process_env
    port = free_port()
    argv = [sys.executable, "-m", "cli.main", "api", "--listen", f"{LOOPBACK}:{port}"]
    process = spawn(
        name,
        [*argv, "--workers", str(workers)],
        log_path=workdir / f"{name}.log",
        env=process_env,
        cwd=REPO_ROOT,
    )
    return process, port


def _built_workers(process: ManagedProcess) -> set[str]:
    return set(_BUILT.findall(process.log_path.read_text()))


def _wait_ready(process: ManagedProcess, port: int, workers: int) -> None:
    """Wait until ``/healthz`` answers and every worker process has built its app.

    A worker that has built its app is past everything start-up does in it, so what the
    logs and the database hold afterwards is what every worker did.
    """
    process.wait_until(
        partial(answers, LOOPBACK, port, "/healthz"), timeout=START_TIMEOUT, what="/healthz"
    )
    process.wait_until(
        lambda: len(_built_workers(process)) >= workers,
        timeout=START_TIMEOUT,
        what=f"{workers} workers built their app",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_installation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[dict[str, str], str]:
    data_dir = tmp_path / "data"
    url = _database_url(str(request.param), data_dir, request)
    return {"MOORAGE_DATA_DIR": str(data_dir), "MOORAGE_DATABASE_URL": url}, url


def _admin_hashes(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text('SELECT username, password_hash FROM "user"'))
            return [row.password_hash for row in rows if row.username == "admin"]
    finally:
        engine.dispose()


def _signing_keys(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT kid FROM signing_key")).scalars())
    finally:
        engine.dispose()


def _token_status(port: int, password: str) -> int:
    response = httpx.get(
        f"http://{LOOPBACK}:{port}/auth/token",
        params={"service": "moorage", "scope": "repository:library/app:pull"},
        auth=("admin", password),
        timeout=30,
    )
    return response.status_code


def _check_one_admin(url: str, logs: list[Path], ports: list[int]) -> None:
    output = "\n".join(log.read_text() for log in logs)
    printed = _CREATED.findall(output)
    assert len(printed) == 1, output[-4000:]
    (password,) = printed
    assert output.count(password) == 1, "the password appears more than once in the logs"
    hashes = _admin_hashes(url)
    assert len(hashes) == 1
    assert verify_password(password, hashes[0])
    assert _signing_keys(url) == ["initial"]
    for port in ports:
        # Fresh connections, so the server's workers share the logins between them.
        for _ in range(2 * WORKERS):
            assert _token_status(port, password) == 200
        assert _token_status(port, password + "x") == 401


def test_api_with_four_workers_creates_one_admin_password_once(
    empty_installation: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, url = empty_installation
    process, port = _start_api(tmp_path, "api", env, WORKERS)
    try:
        _wait_ready(process, port, WORKERS)
        assert len(_built_workers(process)) == WORKERS
        _check_one_admin(url, [process.log_path], [port])
    finally:
        process.stop()


def test_replicas_starting_together_create_one_admin_password(
    empty_installation: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, url = empty_installation
    replicas = [_start_api(tmp_path, f"replica-{n}", env, 2) for n in range(2)]
    try:
        for replica, port in replicas:
            _wait_ready(replica, port, 2)
        logs = [replica.log_path for replica, _ in replicas]
        _check_one_admin(url, logs, [port for _, port in replicas])
    finally:
        for replica, _ in replicas:
            replica.stop()
