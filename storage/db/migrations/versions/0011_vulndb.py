"""vulndb: offline OSV records, their affected packages and each ecosystem's import state.

Revision ID: 0011_vulndb
Revises: 0010_registries
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0011_vulndb"
down_revision = "0010_registries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vuln_record",
        sa.Column("id", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("modified", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("source", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("aliases", sqltypes.AutoString(), nullable=False),
        sa.Column("document", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vuln_record", schema=None) as batch_op:
        batch_op.create_index("ix_vuln_record_source", ["source"], unique=False)
    op.create_table(
        "vuln_affected",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("ecosystem", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("ecosystem_base", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqltypes.AutoString(length=512), nullable=False),
        sa.Column("affected", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vuln_affected", schema=None) as batch_op:
        batch_op.create_index("ix_vuln_affected_lookup", ["ecosystem", "name"], unique=False)
        batch_op.create_index("ix_vuln_affected_record_id", ["record_id"], unique=False)
    op.create_table(
        "vuln_source",
        sa.Column("ecosystem", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("location", sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("newest_modified", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("imported_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("checked_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ecosystem"),
    )


def downgrade() -> None:
    op.drop_table("vuln_source")
    with op.batch_alter_table("vuln_affected", schema=None) as batch_op:
        batch_op.drop_index("ix_vuln_affected_record_id")
        batch_op.drop_index("ix_vuln_affected_lookup")
    op.drop_table("vuln_affected")
    with op.batch_alter_table("vuln_record", schema=None) as batch_op:
        batch_op.drop_index("ix_vuln_record_source")
    op.drop_table("vuln_record")
