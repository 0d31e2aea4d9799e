"""Quarantine holds whatever arrives: any source reference, and the record's exact JSON text.

``source_ref`` was ``varchar(300)``: a record whose key was longer could not even be
quarantined. ``payload_text`` keeps the record exactly as read, as JSON text: ``jsonb``
cannot hold U+0000 (nor non-finite numbers), so ``payload`` keeps a readable copy with
those made visible, and ``hub quarantine retry`` reads the exact copy.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("quarantine", "source_ref", type_=sa.Text(), existing_type=sa.String(300),
                    existing_nullable=True)
    op.add_column("quarantine", sa.Column("payload_text", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("quarantine", "payload_text")
    op.alter_column("quarantine", "source_ref", type_=sa.String(300), existing_type=sa.Text(),
                    existing_nullable=True, postgresql_using="left(source_ref, 300)")
