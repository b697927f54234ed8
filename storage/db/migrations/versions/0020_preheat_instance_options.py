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


def upgrade() -> None:
    with op.batch_alter_table("p2p_instance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("insecure", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("p2p_instance", schema=None) as batch_op:
        batch_op.alter_column("is_default", server_default=None)
        batch_op.alter_column("insecure", server_default=None)
        batch_op.create_index(
            "ix_p2p_instance_one_default",
            ["is_default"],
            unique=True,
            postgresql_where=sa.text("is_default"),
            sqlite_where=sa.text("is_default"),
        )


def downgrade() -> None:
    with op.batch_alter_table("p2p_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_p2p_instance_one_default")
        batch_op.drop_column("insecure")
        batch_op.drop_column("is_default")
