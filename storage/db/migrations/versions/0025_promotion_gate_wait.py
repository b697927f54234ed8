"""promotion_gate_wait: how long a promotion rule's failing gates are evaluated again.

Revision ID: 0025_promotion_gate_wait
Revises: 0024_served_scan_sboms
Create Date: 2026-12-03 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025_promotion_gate_wait"
down_revision = "0024_served_scan_sboms"
branch_labels = None
depends_on = None

_TABLE = "promotion_rule"
_COLUMN = "wait_seconds"


def upgrade() -> None:
    # NOTE: added in place (no batch recreate): existing rules keep deciding once (0)
    op.add_column(
        _TABLE, sa.Column(_COLUMN, sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(_TABLE, _COLUMN, server_default=None)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(sa.text(f"ALTER TABLE {_TABLE} DROP COLUMN {_COLUMN}"))
    else:
        op.drop_column(_TABLE, _COLUMN)
