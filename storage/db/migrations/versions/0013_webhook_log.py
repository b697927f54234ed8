"""webhook log: index finished deliveries by when they finished (for pruning).

Revision ID: 0013_webhook_log
Revises: 0012_webhooks
Create Date: 2026-12-03 11:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013_webhook_log"
down_revision = "0012_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_webhook_delivery_finished_at", "webhook_delivery", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_finished_at", table_name="webhook_delivery")
