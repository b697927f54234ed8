"""replication: policies, executions and their tasks.

Revision ID: 0015_replication
Revises: 0014_backups
Create Date: 2026-12-03 10:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0015_replication"
down_revision = "0014_backups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replication_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("description", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("direction", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("endpoint", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("repositories", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("tags", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("artifact_kind", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("referrers", sa.Boolean(), nullable=False),
        sa.Column("flatten", sa.Integer(), nullable=False),
        sa.Column("prefix", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("trigger", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("cron", sqltypes.AutoString(length=128), nullable=True),
        sa.Column("deletions", sa.Boolean(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("bandwidth_kbps", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("replication_policy", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replication_policy_endpoint"), ["endpoint"], unique=False
        )
    op.create_table(
        "replication_execution",
        sa.Column("id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("policy", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("trigger", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("reason", sqltypes.AutoString(length=2048), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("replication_execution", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replication_execution_policy_id"), ["policy_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_replication_execution_started_at"), ["started_at"], unique=False
        )
    op.create_table(
        "replication_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("operation", sqltypes.AutoString(length=8), nullable=False),
        sa.Column("source", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("destination", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("reference", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("digest", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("bytes_sent", sa.Integer(), nullable=False),
        sa.Column("blobs_copied", sa.Integer(), nullable=False),
        sa.Column("blobs_skipped", sa.Integer(), nullable=False),
        sa.Column("error", sqltypes.AutoString(length=2048), nullable=True),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["replication_execution.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("execution_id", "operation", "source", "reference"),
    )
    with op.batch_alter_table("replication_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replication_task_execution_id"), ["execution_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("replication_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replication_task_execution_id"))
    op.drop_table("replication_task")
    with op.batch_alter_table("replication_execution", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replication_execution_started_at"))
        batch_op.drop_index(batch_op.f("ix_replication_execution_policy_id"))
    op.drop_table("replication_execution")
    with op.batch_alter_table("replication_policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replication_policy_endpoint"))
    op.drop_table("replication_policy")
