"""Bills and contacts keep their source's change stamp, indexed for range lookups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("contact", "receivable", "receipt")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("source_cursor", sa.Text(), nullable=True))
        op.create_index(f"ix_{table}_source_cursor", table, ["source_system", "source_cursor"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_source_cursor", table_name=table)
        op.drop_column(table, "source_cursor")
