"""local users get an email address and a full name.

Revision ID: 0007_user_profile
Revises: 0006_merge_heads
Create Date: 2026-12-03 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0007_user_profile"
down_revision = "0006_merge_heads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sqltypes.AutoString(length=254), nullable=True))
        batch_op.add_column(sa.Column("full_name", sqltypes.AutoString(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("full_name")
        batch_op.drop_column("email")
