"""scanner_api: scans requested through the served Pluggable Scanner API.

Revision ID: 0019_scanner_api
Revises: 0018_preheat
Create Date: 2026-12-03 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0019_scanner_api"
down_revision = "0018_preheat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scanner_api_scan",
        sa.Column("id", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("registry_url", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("repository", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("digest", sqltypes.AutoString(length=256), nullable=False),
        sa.Column("mime_type", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("authorization", sqltypes.AutoString(), nullable=False),
        sa.Column("insecure", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reason", sqltypes.AutoString(), nullable=True),
        sa.Column("data_updated_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("findings", sqltypes.AutoString(), nullable=False),
        sa.Column("platforms", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scanner_api_scan", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scanner_api_scan_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("scanner_api_scan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scanner_api_scan_created_at"))
    op.drop_table("scanner_api_scan")
