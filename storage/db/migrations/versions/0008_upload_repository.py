"""uploads name their repository instead of referring to its row.

An upload session no longer creates its repository: the repository's row appears
once it holds a linked blob or a manifest. Open sessions keep their target (the
name is copied from the row they referred to).

Revision ID: 0008_upload_repository
Revises: 0007_user_profile
Create Date: 2026-12-03 04:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0008_upload_repository"
down_revision = "0007_user_profile"
branch_labels = None
depends_on = None

_NAME = sa.text(
    "UPDATE upload SET repository = "
    "(SELECT repository.name FROM repository WHERE repository.id = upload.repository_id)"
)
_ID = sa.text(
    "UPDATE upload SET repository_id = "
    "(SELECT repository.id FROM repository WHERE repository.name = upload.repository)"
)


def upgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository", sqltypes.AutoString(length=255), nullable=True))
    op.execute(_NAME)
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.alter_column(
            "repository",
            existing_type=sqltypes.AutoString(length=255),
            nullable=False,
        )
        batch_op.drop_column("repository_id")


def downgrade() -> None:
    # NOTE: sessions whose repository has no row yet cannot be kept by the old schema.
    op.execute(
        sa.text(
            "DELETE FROM upload WHERE repository NOT IN (SELECT repository.name FROM repository)"
        )
    )
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository_id", sa.Integer(), nullable=True))
    op.execute(_ID)
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.alter_column("repository_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            "upload_repository_id_fkey", "repository", ["repository_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.drop_column("repository")
