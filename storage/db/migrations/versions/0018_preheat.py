"""preheat: P2P provider instances, preheat policies, executions and their tasks.

Revision ID: 0018_preheat
Revises: 0017_scans
Create Date: 2026-12-03 12:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0018_preheat"
down_revision = "0017_scans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "p2p_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("description", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("vendor", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("endpoint", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("auth_mode", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("username", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("secret_sealed", sqltypes.AutoString(length=8192), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "preheat_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("description", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("repositories", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("tags", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("signed_only", sa.Boolean(), nullable=False),
        sa.Column("severity", sqltypes.AutoString(length=16), nullable=True),
        sa.Column("trigger", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("cron", sqltypes.AutoString(length=128), nullable=True),
        sa.Column("scope", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("cluster_ids", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["instance_id"], ["p2p_instance.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )
    with op.batch_alter_table("preheat_policy", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preheat_policy_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_preheat_policy_instance_id"), ["instance_id"], unique=False
        )
    op.create_table(
        "preheat_execution",
        sa.Column("id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("policy", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("trigger", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("reason", sqltypes.AutoString(length=2048), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("preheat_execution", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preheat_execution_policy_id"), ["policy_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_preheat_execution_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_preheat_execution_started_at"), ["started_at"], unique=False
        )
    op.create_table(
        "preheat_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("repository", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("tag", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("digest", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("media_type", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("job_id", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("peers", sqltypes.AutoString(), nullable=False),
        sa.Column("error", sqltypes.AutoString(length=2048), nullable=True),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["preheat_execution.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("execution_id", "repository", "tag"),
    )
    with op.batch_alter_table("preheat_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preheat_task_execution_id"), ["execution_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("preheat_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preheat_task_execution_id"))
    op.drop_table("preheat_task")
    with op.batch_alter_table("preheat_execution", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preheat_execution_started_at"))
        batch_op.drop_index(batch_op.f("ix_preheat_execution_project_id"))
        batch_op.drop_index(batch_op.f("ix_preheat_execution_policy_id"))
    op.drop_table("preheat_execution")
    with op.batch_alter_table("preheat_policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preheat_policy_instance_id"))
        batch_op.drop_index(batch_op.f("ix_preheat_policy_project_id"))
    op.drop_table("preheat_policy")
    op.drop_table("p2p_instance")
