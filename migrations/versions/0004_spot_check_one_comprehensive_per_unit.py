"""one comprehensive spot check per unit and month

The unique constraint (kind, period, org_id, item_number) lets any number of
comprehensive rows through, whose item_number is NULL (NULLs are distinct in
SQL); this partial unique index covers them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHERE = sa.text("item_number IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("spot_check", schema=None) as batch_op:
        batch_op.create_index(
            "uq_spot_check_unit_month",
            ["kind", "period", "org_id"],
            unique=True,
            sqlite_where=WHERE,
            postgresql_where=WHERE,
        )


def downgrade() -> None:
    with op.batch_alter_table("spot_check", schema=None) as batch_op:
        batch_op.drop_index("uq_spot_check_unit_month")
