"""Directory lookups by mobile are rationed: remember when one missed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("internal_user", sa.Column("directory_lookup_missed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("internal_user", "directory_lookup_missed_at")
