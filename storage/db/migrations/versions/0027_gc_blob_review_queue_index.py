"""gc_blob_review_queue_index: the blob review queue is read by state and queue time.

The collector takes the oldest due reviews (``state = 'review'``, ordered by
``queued_at``) and the tombstones (``state = 'deleting'``) a batch at a time; with only
the ``review_after`` index each batch scanned and sorted the whole queue (0.17 s a batch
at a million queued blobs on SQLite). This index serves both in the batch's time.

Revision ID: 0027_gc_blob_review_queue_index
Revises: 0026_audit_hash_not_unique
Create Date: 2026-12-04 12:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0027_gc_blob_review_queue_index"
down_revision = "0026_audit_hash_not_unique"
branch_labels = None
depends_on = None

_INDEX = "ix_gc_blob_review_queue"
_TABLE = "gc_blob_review"


def upgrade() -> None:
    op.create_index(_INDEX, _TABLE, ["state", "queued_at"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
