"""preheat_instance_options: a default P2P instance and instances whose TLS is not verified.

Revision ID: 0020_preheat_instance_options
Revises: 0019_scanner_api
Create Date: 2026-12-03 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_preheat_instance_options"
down_revision = "0019_scanner_api"
branch_labels = None
depends_on = None


#: SQLite recreates a table for most batch alterations, and cannot drop one that rows of
#: ``preheat_policy`` reference while foreign keys are on: these steps alter in place.
_TABLE = "p2p_instance"
_INDEX = "ix_p2p_instance_one_default"
_COLUMNS = ("is_default", "insecure")


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column(
            _TABLE, sa.Column(column, sa.Boolean(), nullable=False, server_default=sa.false())
        )
    if op.get_bind().dialect.name != "sqlite":
        for column in _COLUMNS:
            op.alter_column(_TABLE, column, server_default=None)
    op.create_index(
        _INDEX,
        _TABLE,
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    for column in reversed(_COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(sa.text(f"ALTER TABLE {_TABLE} DROP COLUMN {column}"))
        else:
            op.drop_column(_TABLE, column)
