"""Identity conflicts are resolved by a person on the operations page: who, when, how.

``resolution`` is ``merge`` (the record's identity was repointed to the customer the
person chose) or ``keep_apart`` (the records are different companies; nothing moved);
``resolution_detail`` keeps what a merge changed (the identity's customer before and
after, the ids of the rows that moved), so a merge can be read back and undone by hand.

Revision ID: 0018
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("identity_conflict", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("identity_conflict", sa.Column("resolved_by", sa.String(length=100), nullable=True))
    op.add_column("identity_conflict", sa.Column("resolution", sa.String(length=20), nullable=True))
    op.add_column("identity_conflict", sa.Column("resolution_detail", JSONB(), nullable=True))


def downgrade() -> None:
    for column in ("resolution_detail", "resolution", "resolved_by", "resolved_at"):
        op.drop_column("identity_conflict", column)
