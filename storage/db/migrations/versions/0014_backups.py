"""backups: the GC holds of running backups.

Revision ID: 0014_backups
Revises: 0013_webhook_log
Create Date: 2026-12-03 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0014_backups"
down_revision = "0013_webhook_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_hold",
        sa.Column("id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backup_hold_expires_at", "backup_hold", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_backup_hold_expires_at", table_name="backup_hold")
    op.drop_table("backup_hold")
