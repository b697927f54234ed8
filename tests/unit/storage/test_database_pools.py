"""PostgreSQL pool sizes come from ``MOORAGE_DATABASE__*`` (``core.database_settings``).

Building the engines opens no connection, so the settings can be checked here without a
server; ``tests/integration/test_pg_pool_limits.py`` checks the same limits on a real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from core.database_settings import DatabaseSettings
from core.settings import Settings
from storage.db.engine import create_engines

URL = "postgresql+psycopg://moorage@127.0.0.1:1/moorage"


def _pool(engine: Engine) -> QueuePool:
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool


def test_defaults_allow_36_connections_per_api_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=URL)
    assert settings.database.max_connections == 36
    engines = create_engines(settings)
    try:
        assert engines.read is engines.write
        assert _pool(engines.write).size() == 16
        assert engines.async_read is not None
    finally:
        engines.write.dispose()


def test_environment_sizes_the_pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOORAGE_DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("MOORAGE_DATABASE__MAX_OVERFLOW", "2")
    monkeypatch.setenv("MOORAGE_DATABASE__POOL_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("MOORAGE_DATABASE__ASYNC_READ_CONNECTIONS", "0")
    settings = Settings(data_dir=tmp_path, database_url=URL)
    assert settings.database.max_connections == 5
    engines = create_engines(settings)
    try:
        assert _pool(engines.write).size() == 3
        assert _pool(engines.write).timeout() == 2.5
        # NOTE: no awaited reads: the manifest fast path reads on worker threads instead.
        assert engines.async_read is None
    finally:
        engines.write.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pool_size", 0),
        ("max_overflow", -1),
        ("pool_timeout_seconds", 0),
        ("async_read_connections", -1),
    ],
)
def test_out_of_range_values_are_refused_by_name(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"data_dir": tmp_path, "database": {field: value}})
    [error] = refused.value.errors()
    assert error["loc"] == ("database", field)


def test_sqlite_keeps_its_own_pools(tmp_path: Path) -> None:
    engines = create_engines(Settings(data_dir=tmp_path, database=DatabaseSettings(pool_size=2)))
    try:
        assert _pool(engines.write).size() == 40
        assert engines.async_read is None
    finally:
        engines.read.dispose()
        engines.write.dispose()
