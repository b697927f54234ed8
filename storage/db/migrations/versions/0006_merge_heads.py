"""one migration line: join the identity and control-plane branches.

Revision ID: 0006_merge_heads
Revises: 0004_pull_time, 0005_login_attempts
Create Date: 2026-12-03 04:15:00.000000
"""

from __future__ import annotations

revision = "0006_merge_heads"
down_revision = ("0004_pull_time", "0005_login_attempts")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the two branches touch disjoint tables."""


def downgrade() -> None:
    """Nothing to change: downgrading splits the line again."""
