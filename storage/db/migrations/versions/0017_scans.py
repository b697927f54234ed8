"""scans: package inventories, scan reports, CVE allowlists and scan policies.

Revision ID: 0017_scans
Revises: 0016_trust
Create Date: 2026-12-03 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0017_scans"
down_revision = "0016_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_inventory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("digest", sqltypes.AutoString(length=256), nullable=False),
        sa.Column("platform", sqltypes.AutoString(length=128), nullable=True),
        sa.Column("os", sqltypes.AutoString(), nullable=True),
        sa.Column("packages", sqltypes.AutoString(), nullable=False),
        sa.Column("failure", sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "digest"),
    )
    op.create_table(
        "scan_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("repository", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("digest", sqltypes.AutoString(length=256), nullable=False),
        sa.Column("status", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqltypes.AutoString(), nullable=True),
        sa.Column("scanner", sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("data_updated_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("worst", sa.Integer(), nullable=False),
        sa.Column("findings", sqltypes.AutoString(), nullable=False),
        sa.Column("platforms", sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "digest"),
    )
    with op.batch_alter_table("scan_report", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scan_report_repository", ["project_id", "repository"], unique=False
        )
    op.create_table(
        "scan_allowlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("vulnerability_id", sqltypes.AutoString(length=128), nullable=False),
        sa.Column("expires_at", sqltypes.UTCDateTime(), nullable=True),
        sa.Column("comment", sqltypes.AutoString(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scan_allowlist", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scan_allowlist_project_id"), ["project_id"], unique=False
        )
    op.create_table(
        "scan_policy",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("scan_on_push", sa.Boolean(), nullable=False),
        sa.Column("prevent_severity", sqltypes.AutoString(length=16), nullable=True),
        sa.Column("refuse_unscanned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
    )


def downgrade() -> None:
    op.drop_table("scan_policy")
    with op.batch_alter_table("scan_allowlist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scan_allowlist_project_id"))
    op.drop_table("scan_allowlist")
    with op.batch_alter_table("scan_report", schema=None) as batch_op:
        batch_op.drop_index("ix_scan_report_repository")
    op.drop_table("scan_report")
    op.drop_table("scan_inventory")
