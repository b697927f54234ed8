"""upload_hash_state: an upload's running SHA-256, saved with its offset.

Every API process can continue an upload's hash from its row instead of re-reading the
bytes already received. Open sessions get no state; completing them re-reads as before.

Revision ID: 0022_upload_hash_state
Revises: 0021_scanner_registrations
Create Date: 2026-12-03 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_upload_hash_state"
down_revision = "0021_scanner_registrations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hash_offset", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("hash_state", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_column("hash_state")
        batch_op.drop_column("hash_offset")
