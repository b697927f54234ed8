"""Tables and databases of the statement and store tests (``test_direct_statements`` and others)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, UniqueConstraint
from sqlmodel.sql.sqltypes import UTCDateTime

from core.settings import Settings
from storage.db.engine import create_engines
from tests.services.postgres import Postgres

META = MetaData()
ITEM = Table(
    "direct_item",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False),
    Column("size", Integer, nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    UniqueConstraint("name"),
)
WITH_DEFAULT = Table(
    "direct_defaulted",
    META,
    Column("id", Integer, primary_key=True),
    Column("state", String, nullable=False, default="new"),
)


def database_url(request: pytest.FixtureRequest, prefix: str) -> str | None:
    """A fixture parameter's database: ``None`` for ``sqlite``, else a new PostgreSQL one."""
    if request.param != "postgresql":
        return None
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database(f"{prefix}_{secrets.token_hex(4)}")


def engine_with_tables(data_dir: Path, url: str | None) -> Iterator[Engine]:
    """The product's writer engine on ``url`` (``None``: SQLite), these tables created."""
    built = create_engines(Settings(data_dir=data_dir, database_url=url)).write
    META.create_all(built)
    yield built
    built.dispose()
