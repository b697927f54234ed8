"""The upload table's migration on each database: open sessions keep their target."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command

from core.settings import Settings
from storage.db.migrate import alembic_config, upgrade

pytestmark = pytest.mark.integration
BEFORE = "0007_user_profile"


def _settings(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if database == "sqlite":
        return Settings(data_dir=tmp_path)
    postgres = request.getfixturevalue("postgres")
    url = postgres.create_database(f"upmig_{secrets.token_hex(4)}")
    return Settings(data_dir=tmp_path, database_url=url)


def _rows(engine: sqlalchemy.Engine, query: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sqlalchemy.text(query))]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_open_uploads_keep_their_repository_across_the_migration(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = _settings(database, tmp_path, request)
    upgrade(settings, BEFORE)
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    now, later = datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO project (id, name, public, storage_id, created_at)"
                    " VALUES (1, 'p1', false, 's1', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sqlalchemy.text(
                    "INSERT INTO repository (id, project_id, name, created_at)"
                    " VALUES (7, 1, 'p1/team/app', :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sqlalchemy.text(
                    'INSERT INTO upload (id, project_id, repository_id, "offset", created_at,'
                    " expires_at) VALUES ('u1', 1, 7, 5, :now, :later)"
                ),
                {"now": now, "later": later},
            )
        upgrade(settings)
        assert _rows(engine, 'SELECT id, repository, "offset" FROM upload') == [
            ("u1", "p1/team/app", 5)
        ]
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    'INSERT INTO upload (id, project_id, repository, "offset", created_at,'
                    " expires_at) VALUES ('u2', 1, 'p1/new', 0, :now, :later)"
                ),
                {"now": now, "later": later},
            )
        command.downgrade(alembic_config(settings), BEFORE)
        # the session whose repository has no row cannot be kept by the old schema
        assert _rows(engine, "SELECT id, repository_id FROM upload") == [("u1", 7)]
    finally:
        engine.dispose()
