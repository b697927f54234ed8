"""A private PostgreSQL server for the tests, from the Debian ``postgresql`` package.

The server listens on 127.0.0.1 only, on a free port, with its Unix socket in a
private directory, trust authentication and durability switched off for speed.
As root the server runs as the ``postgres`` system user, so its data directory
lives in a directory of its own that this user owns (pytest's temporary tree is
private to root); the log stays in ``workdir``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
from psycopg import sql

from tests.services.process import LOOPBACK, ManagedProcess, free_port, run_checked, spawn

PG_BIN = Path(os.environ.get("MOORAGE_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
DATABASE = "moorage"
START_TIMEOUT = 30.0
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass
class Postgres:
    """Connection facts of a running server and the means to stop it."""

    url: str
    port: int
    host: str
    user: str
    data_dir: Path
    log_path: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = DATABASE) -> psycopg.Connection[tuple[object, ...]]:
        """Open an autocommit psycopg connection to ``database``."""
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL."""
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        with self.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def stop(self) -> None:
        self.process.stop()


def _accepts_queries(port: int) -> bool:
    try:
        with psycopg.connect(
            host=LOOPBACK, port=port, user=SERVER_USER, dbname="postgres", connect_timeout=1
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _data_root(workdir: Path) -> tuple[Path, str | None]:
    """Pick where the cluster lives and which user runs the server."""
    if os.geteuid() != 0:
        return workdir / "pg", None
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise RuntimeError(
            "running as root needs the 'postgres' system user (apt-get install postgresql)"
        ) from exc
    root = Path(tempfile.mkdtemp(prefix="moorage-pg-"))
    os.chown(root, account.pw_uid, account.pw_gid)
    return root, SERVER_USER


def start_postgres(workdir: Path) -> Postgres:
    """Initialise a cluster, start it, create the ``moorage`` database."""
    workdir.mkdir(parents=True, exist_ok=True)
    root, run_as = _data_root(workdir)
    try:
        return _start(workdir / "postgres.log", root, run_as)
    except BaseException:
        if run_as is not None:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _start(log_path: Path, root: Path, run_as: str | None) -> Postgres:
    data_dir, socket_dir = root / "data", root / "sock"
    for directory in (data_dir, socket_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if run_as is not None:
            shutil.chown(directory, run_as, run_as)
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    run_checked(
        "initdb",
        [
            str(PG_BIN / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            SERVER_USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
        ],
        log_path=log_path,
        timeout=60.0,
        user=run_as,
        env=env,
    )
    port = free_port()
    process = spawn(
        "postgres",
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data_dir),
            "-h",
            LOOPBACK,
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=200",
        ],
        log_path=log_path,
        env=env,
        user=run_as,
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients.
        stop_signal=signal.SIGINT,
    )
    if run_as is not None:
        process.cleanups.append(partial(shutil.rmtree, root, ignore_errors=True))
    process.wait_until(partial(_accepts_queries, port), timeout=START_TIMEOUT, what="SELECT 1")
    server = Postgres(
        url="",
        port=port,
        host=LOOPBACK,
        user=SERVER_USER,
        data_dir=data_dir,
        log_path=log_path,
        process=process,
    )
    try:
        server.url = server.create_database(DATABASE)
    except Exception:
        server.stop()
        raise
    return server
