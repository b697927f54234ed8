"""promotion_rules: promotions a push starts (per source project).

Revision ID: 0023_promotion_rules
Revises: 0022_upload_hash_state
Create Date: 2026-12-03 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0023_promotion_rules"
down_revision = "0022_upload_hash_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotion_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("description", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("repositories", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("tags", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("pusher", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("pusher_kind", sqltypes.AutoString(length=16), nullable=True),
        sa.Column("target_project", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("target_repository", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("max_severity", sqltypes.AutoString(length=16), nullable=True),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("builder", sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("approval", sa.Boolean(), nullable=False),
        sa.Column("approval_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("sign", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    with op.batch_alter_table("promotion_rule", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_promotion_rule_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("promotion_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotion_rule_project_id"))
    op.drop_table("promotion_rule")
