"""webhooks: policies, deliveries and delivery attempts.

Revision ID: 0012_webhooks
Revises: 0011_vulndb
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0012_webhooks"
down_revision = "0011_vulndb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("name", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("url", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("events", sqltypes.AutoString(), nullable=False),
        sa.Column("payload_format", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("failing_since", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("secret_sealed", sqltypes.AutoString(length=512), nullable=False),
        sa.Column("previous_secret_sealed", sqltypes.AutoString(length=512), nullable=True),
        sa.Column("previous_secret_until", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("auth_header_sealed", sqltypes.AutoString(length=8192), nullable=True),
        sa.Column("created_by", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        sa.UniqueConstraint("project_id", "name"),
    )
    with op.batch_alter_table("webhook_policy", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_policy_project_id"), ["project_id"], unique=False
        )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("type", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("repository", sqltypes.AutoString(length=255), nullable=True),
        sa.Column("event", sqltypes.AutoString(), nullable=False),
        sa.Column("event_time", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["policy_id"], ["webhook_policy.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("policy_id", "event_id", "generation"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_delivery_pending", ["policy_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_event_time"), ["event_time"], unique=False
        )
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("response_excerpt", sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_delivery.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_attempt_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_attempt_delivery_id"))
    op.drop_table("webhook_attempt")
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_event_time"))
        batch_op.drop_index("ix_webhook_delivery_pending")
    op.drop_table("webhook_delivery")
    with op.batch_alter_table("webhook_policy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_policy_project_id"))
    op.drop_table("webhook_policy")
