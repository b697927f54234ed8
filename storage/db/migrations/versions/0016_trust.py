"""trust: project trust policies and signature verification results.

Revision ID: 0016_trust
Revises: 0015_replication
Create Date: 2026-12-03 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0016_trust"
down_revision = "0015_replication"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_policy",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("document", sqltypes.AutoString(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("updated_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_table(
        "trust_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("repository", sqltypes.AutoString(length=255), nullable=False),
        sa.Column("subject_digest", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("artifact_digest", sqltypes.AutoString(length=200), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("location", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("kind", sqltypes.AutoString(length=16), nullable=False),
        sa.Column("format", sqltypes.AutoString(length=32), nullable=False),
        sa.Column("predicate_type", sqltypes.AutoString(length=512), nullable=True),
        sa.Column("signer", sqltypes.AutoString(length=64), nullable=True),
        sa.Column("fingerprint", sqltypes.AutoString(length=80), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("reason", sqltypes.AutoString(length=1024), nullable=False),
        sa.Column("facts", sqltypes.AutoString(), nullable=False),
        sa.Column("policy_revision", sa.Integer(), nullable=False),
        sa.Column("verified_at", sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("trust_result", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trust_result_subject", ["repository", "subject_digest"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trust_result_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trust_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_result_project_id"))
        batch_op.drop_index("ix_trust_result_subject")
    op.drop_table("trust_result")
    op.drop_table("trust_policy")
