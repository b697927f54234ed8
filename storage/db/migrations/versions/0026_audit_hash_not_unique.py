"""audit_hash_not_unique: the audit log's event hash loses its unique index.

Every appended event paid for a random insert into a B-tree of 64-character hashes (its
cost grew with the log, a third of an audited pull's write); nothing looks events up by
hash, and the chain itself (each hash covers the previous one, appends serialised by the
head row) is what ``audit verify`` checks. PostgreSQL drops the constraint in place;
SQLite copies the table once (batch mode), its other indexes recreated with it.

Revision ID: 0026_audit_hash_not_unique
Revises: 0025_promotion_gate_wait
Create Date: 2026-12-04 04:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0026_audit_hash_not_unique"
down_revision = "0025_promotion_gate_wait"
branch_labels = None
depends_on = None

_TABLE = "audit_event"
#: PostgreSQL's name of the unnamed unique constraint of 0002 (``<table>_<column>_key``).
_POSTGRES_NAME = "audit_event_hash_key"
#: The name SQLite's batch mode gives it, through the naming convention below.
_SQLITE_NAME = "uq_audit_event_hash"
_CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(_TABLE, naming_convention=_CONVENTION) as batch_op:
            batch_op.drop_constraint(_SQLITE_NAME, type_="unique")
    else:
        op.drop_constraint(_POSTGRES_NAME, _TABLE, type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(_TABLE, naming_convention=_CONVENTION) as batch_op:
            batch_op.create_unique_constraint(_SQLITE_NAME, ["hash"])
    else:
        op.create_unique_constraint(_POSTGRES_NAME, _TABLE, ["hash"])
