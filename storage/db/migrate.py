"""Schema migrations (Alembic), run programmatically by ``moorage migrate`` and at start.

Every schema change runs under the installation's migration lock
(:func:`migration_lock`): a PostgreSQL advisory lock, or an exclusive ``flock`` on a
file next to the SQLite database. Processes starting together (replicas, an init job
beside the API) queue on it; each then finds the schema at head and changes nothing, so
no two of them ever migrate at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import make_url, text
from sqlalchemy.pool import NullPool

from core.settings import Settings

_HERE = Path(__file__).parent / "migrations"
_log = logging.getLogger(__name__)

#: The PostgreSQL advisory lock key of schema changes (per database; any fixed bigint).
ADVISORY_LOCK_KEY: Final = 0x6D6F6F72_6D696772  # "moormigr"
#: Bound on waiting for another process's migration before giving up.
LOCK_WAIT_SECONDS: Final = 600.0
#: What a process logs when it has to wait for another one's migration.
WAITING_MESSAGE: Final = "waiting for the migration lock (another process is migrating)"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url)
    config.attributes["settings"] = settings
    return config


def script_directory() -> ScriptDirectory:
    """The migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return ScriptDirectory.from_config(config)


def heads() -> tuple[str, ...]:
    """The head revisions of the migration scripts (one for a linear history)."""
    return tuple(script_directory().get_heads())


def sqlite_lock_path(settings: Settings) -> Path | None:
    """The migration lock file beside the SQLite database (``None`` on PostgreSQL)."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in {"", ":memory:"}:
        return settings.data_dir / "moorage.db.migrate-lock"
    return Path(database).with_name(Path(database).name + ".migrate-lock")


@contextmanager
def migration_lock(settings: Settings, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the installation's migration lock for the block (one holder at a time).

    Waits up to ``wait_seconds`` for another holder, logging :data:`WAITING_MESSAGE`
    once if it has to wait.

    Raises:
        TimeoutError: The lock stayed busy (SQLite).
        sqlalchemy.exc.OperationalError: The lock stayed busy (PostgreSQL's lock_timeout).
    """
    path = sqlite_lock_path(settings)
    if path is None:
        with _advisory_lock(settings.resolved_database_url, wait_seconds):
            yield
    else:
        with _file_lock(path, wait_seconds):
            yield


@contextmanager
def _file_lock(path: Path, wait_seconds: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline, pause, waited = time.monotonic() + wait_seconds, 0.01, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    _log.info(WAITING_MESSAGE)
                    waited = True
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the migration lock {path} stayed busy") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def _advisory_lock(url: str, wait_seconds: float) -> Iterator[None]:
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            key = {"key": ADVISORY_LOCK_KEY}
            if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
                _log.info(WAITING_MESSAGE)
                milliseconds = int(wait_seconds * 1000)
                connection.exec_driver_sql(f"SET lock_timeout = {milliseconds}")
                connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


def _upgrade_locked(settings: Settings, revision: str) -> None:
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (idempotent), under the migration lock."""
    with migration_lock(settings):
        _upgrade_locked(settings, revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Take the database schema back to ``revision`` (``"base"``: no tables), under the lock."""
    with migration_lock(settings):
        command.downgrade(alembic_config(settings), revision)


@contextmanager
def migrated(settings: Settings) -> Iterator[None]:
    """Hold the migration lock with the schema at head for the block.

    For first-start work that must run once however many processes start together (the
    admin account, the first signing key): the block runs in one process at a time,
    and each finds what the ones before it did.
    """
    with migration_lock(settings):
        _upgrade_locked(settings, "head")
        yield
