"""pull time.

Revision ID: 0004_pull_time
Revises: 0003_control_plane
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0004_pull_time"
down_revision = "0003_control_plane"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOTE: nullable and without a default, so adding it rewrites no rows on PostgreSQL.
    with op.batch_alter_table("manifest", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pulled_at", sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("manifest", schema=None) as batch_op:
        batch_op.drop_column("pulled_at")
