"""scanner_registrations: external scanners (Harbor's model) this installation's scans use.

Revision ID: 0021_scanner_registrations
Revises: 0020_preheat_instance_options
Create Date: 2026-12-03 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0021_scanner_registrations"
down_revision = "0020_preheat_instance_options"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scanner_registration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("description", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("url", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("auth", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("sealed_credential", sqltypes.AutoString(length=8192), nullable=True),
        sa.Column("skip_tls_verify", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scanner_registration")
