"""registry endpoints: remote registries for proxy projects and replication.

Revision ID: 0010_registries
Revises: 0009_event_batches
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0010_registries"
down_revision = "0009_event_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=63), nullable=False),
        sa.Column("url", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("type", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("credential", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("username", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("sealed_secret", sqltypes.AutoString(), nullable=True),
        sa.Column("ca_bundle", sqltypes.AutoString(), nullable=True),
        sa.Column("insecure", sa.Boolean(), nullable=False),
        sa.Column("realm_hosts", sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("registry_endpoint")
