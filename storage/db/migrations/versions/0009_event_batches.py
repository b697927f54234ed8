"""event batches: subscriber queues and batches of the event fan-out.

Revision ID: 0009_event_batches
Revises: 0008_upload_repository
Create Date: 2026-12-03 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0009_event_batches"
down_revision = "0008_upload_repository"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_queue",
        sa.Column("subscriber", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber", "event_id"),
    )
    op.create_table(
        "event_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("workflow_id", sqltypes.AutoString(length=512), nullable=False),
        sa.Column("first_event_id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("events", sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("closed_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("outcome", sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workflow_id"),
    )
    with op.batch_alter_table("event_batch", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_batch_open", ["subscriber", "closed_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("event_batch", schema=None) as batch_op:
        batch_op.drop_index("ix_event_batch_open")
    op.drop_table("event_batch")
    op.drop_table("event_queue")
