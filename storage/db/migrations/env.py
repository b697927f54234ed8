"""Alembic environment: migrations run online against the configured database."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import storage.db.identity_tables
import storage.db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db.engine import create_db_engine

config = context.config
settings = config.attributes["settings"]
engine = create_db_engine(settings)
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=True,
            user_module_prefix="sqltypes.",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
finally:
    engine.dispose()
