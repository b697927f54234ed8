"""event batches: subscriber queues and batches of the event fan-out

Revision ID: 0007_event_batches
Revises: 0006_merge_heads
Create Date: 2026-12-03 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0007_event_batches'
down_revision = '0006_merge_heads'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_queue',
        sa.Column('subscriber', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('subscriber', 'event_id'),
    )
    op.create_table(
        'event_batch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column('first_event_id', sa.Integer(), nullable=False),
        sa.Column('last_event_id', sa.Integer(), nullable=False),
        sa.Column('events', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('workflow_id'),
    )
    with op.batch_alter_table('event_batch', schema=None) as batch_op:
        batch_op.create_index(
            'ix_event_batch_open', ['subscriber', 'closed_at', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('event_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_event_batch_open')
    op.drop_table('event_batch')
    op.drop_table('event_queue')
