"""served_scan_sboms: what a served scan keeps for its SBOM reports.

``scanner_api_scan`` gets the capabilities its request enabled (with the SBOM formats
asked for, JSON) and the packages of each image it analyzed (JSON), from which the SBOM
report is built when it is read. Scans stored before keep the defaults: every capability
enabled, no inventories (their SBOM report describes no package).

Revision ID: 0024_served_scan_sboms
Revises: 0023_promotion_rules
Create Date: 2026-12-03 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0024_served_scan_sboms"
down_revision = "0023_promotion_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scanner_api_scan", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("capabilities", sqltypes.AutoString(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("inventories", sqltypes.AutoString(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("scanner_api_scan", schema=None) as batch_op:
        batch_op.drop_column("inventories")
        batch_op.drop_column("capabilities")
