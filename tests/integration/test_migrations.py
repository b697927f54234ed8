"""Schema migrations on SQLite and PostgreSQL: round trips with data, and the migration lock."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlalchemy.pool import NullPool

from core.settings import Settings
from storage.db.migrate import WAITING_MESSAGE, downgrade, heads, migration_lock, upgrade
from tests.services.moorage import REPO_ROOT
from tests.services.postgres import Postgres
from tests.services.process import ManagedProcess, spawn

#: ``moorage migrate`` processes started together in the race test.
MIGRATORS = 4
#: Bound on a process reaching the lock, and on the queued processes finishing.
WAIT_SECONDS = 120.0


def _fresh_settings(backend: str, root: Path, request: pytest.FixtureRequest) -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    if backend == "sqlite":
        return Settings(data_dir=root)
    postgres: Postgres = request.getfixturevalue("postgres")
    url = postgres.create_database(f"mig_{secrets.token_hex(4)}")
    return Settings(data_dir=root, database_url=url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return _fresh_settings(backend, tmp_path / "db", request)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = sqlalchemy.create_engine(settings.resolved_database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _schema(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, keys, indexes and constraints, comparable across databases."""
    inspector = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
        }
    return schema


def _version(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _value(column: sqlalchemy.Column[Any], index: int) -> Any:
    """A valid value of ``column`` for the row numbered ``index`` (foreign keys: row 1)."""
    if column.foreign_keys:
        referred = next(iter(column.foreign_keys)).column
        return _value(referred, 1)
    kind = column.type.python_type
    if kind is bool:
        return False
    if kind is int:
        return index
    if kind is datetime:
        return datetime(2026, 12, 3, tzinfo=UTC)
    if kind is bytes:
        return b"\x00payload"
    length = getattr(column.type, "length", None) or 64
    return f"{column.name}-{index}"[:length]


def _counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the schema (without Alembic's own table)."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
            if t.name != "alembic_version"
        }


def _fill_every_table(engine: Engine) -> dict[str, int]:
    """Insert one row into every empty table of the schema (parents first); rows per table."""
    metadata = MetaData()
    metadata.reflect(engine)
    empty = {name for name, count in _counts(engine).items() if count == 0}
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name in empty:
                values = {c.name: _value(c, 1) for c in table.c}
                connection.execute(table.insert().values(values))
    return _counts(engine)


def test_the_migration_history_has_one_head_and_upgrade_reaches_it(
    settings: Settings, engine: Engine
) -> None:
    assert len(heads()) == 1, heads()
    upgrade(settings)
    assert _version(engine) == list(heads())


def test_upgrade_downgrade_upgrade_with_a_row_in_every_table(
    settings: Settings, engine: Engine, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    upgrade(settings)
    rows = _fill_every_table(engine)
    assert len(rows) >= 25, rows  # every table of the schema, none skipped
    assert set(rows.values()) == {1}, rows

    downgrade(settings, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(settings)

    fresh_settings = _fresh_settings(backend, tmp_path / "fresh", request)
    upgrade(fresh_settings)
    fresh = sqlalchemy.create_engine(fresh_settings.resolved_database_url, poolclass=NullPool)
    try:
        assert _schema(engine) == _schema(fresh)
        assert _version(engine) == _version(fresh) == list(heads())
    finally:
        fresh.dispose()
    # the round-tripped schema takes data again
    assert set(_fill_every_table(engine).values()) == {1}


@pytest.mark.parametrize("target", ["0005_login_attempts", "0004_pull_time"])
def test_a_partial_downgrade_and_upgrade_keep_the_rows_of_the_tables_it_keeps(
    settings: Settings, engine: Engine, target: str
) -> None:
    upgrade(settings)
    _fill_every_table(engine)
    downgrade(settings, target)
    kept = set(inspect(engine).get_table_names()) - {"alembic_version"}
    upgrade(settings)
    counts = _counts(engine)
    assert {"manifest", "tag", "manifest_blob", "manifest_child"} <= kept
    # Downgrading 0008_upload_repository drops upload sessions whose repository has no
    # row (the filler's session names no existing repository): by design, not a loss.
    sessions = {"upload"}
    assert {t for t, count in counts.items() if count == 1} - sessions == kept - sessions, counts
    assert {t for t, count in counts.items() if count == 0} - sessions == set(counts) - kept


def _migrate(settings: Settings, log_path: Path) -> ManagedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {"MOORAGE_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"}
    if settings.database_url:
        env["MOORAGE_DATABASE_URL"] = settings.database_url
    argv = [sys.executable, "-m", "cli.main", "migrate"]
    return spawn("moorage migrate", argv, log_path=log_path, env=env, cwd=REPO_ROOT)


def _logged_waiting(process: ManagedProcess) -> bool:
    return WAITING_MESSAGE in process.log_path.read_text()


def _wait_for_exit(process: ManagedProcess, deadline: float) -> int:
    while process.popen.poll() is None:
        if time.monotonic() > deadline:
            process.stop()
            raise process.failure("did not finish in time")
        time.sleep(0.1)
    return process.popen.returncode


def test_concurrent_migrate_processes_queue_on_the_lock_and_leave_one_schema(
    settings: Settings, engine: Engine, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Replicas starting together: each waits for the lock, then all succeed on one schema."""
    processes: list[ManagedProcess] = []
    try:
        with migration_lock(settings):
            processes = [
                _migrate(settings, tmp_path / f"migrate-{n}.log") for n in range(MIGRATORS)
            ]
            deadline = time.monotonic() + WAIT_SECONDS
            for process in processes:
                process.wait_until(
                    partial(_logged_waiting, process),
                    timeout=max(deadline - time.monotonic(), 1.0),
                    what="waiting for the migration lock",
                )
            assert not inspect(engine).get_table_names()  # nobody migrated past the lock
        deadline = time.monotonic() + WAIT_SECONDS
        codes = [_wait_for_exit(process, deadline) for process in processes]
    finally:
        for process in processes:
            process.stop()
    assert codes == [0] * MIGRATORS, [p.log_path.read_text()[-2000:] for p in processes]
    fresh_settings = _fresh_settings(backend, tmp_path / "fresh", request)
    upgrade(fresh_settings)
    fresh = sqlalchemy.create_engine(fresh_settings.resolved_database_url, poolclass=NullPool)
    try:
        assert _schema(engine) == _schema(fresh)
        assert _version(engine) == list(heads())
    finally:
        fresh.dispose()
