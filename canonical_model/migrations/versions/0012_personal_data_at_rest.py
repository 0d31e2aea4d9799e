"""Personal data at rest: mobiles and e-mails sealed, a blind index beside each.

``contact``, ``internal_user`` and ``lead``: ``mobile`` and ``email`` become ``text`` (a
sealed value, ``v1:<kid>:<base64>``, is longer than the plaintext limits, which the
canonical records keep checking), and each gets a ``<column>_hash`` (HMAC-SHA256 blind
index, hex) with an index; the indexes on the sealed columns go (nothing matches on
ciphertext). Existing rows are not converted here: a migration cannot see the key.
``hub keys encrypt-existing`` seals them and fills the hashes; until then readers take
plaintext as it is, and ``hub doctor`` / ``hub keys status`` count what is left.

Revision ID: 0012
Revises: 0014
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0014"
branch_labels = None
depends_on = None

# table -> (plaintext indexes that go, (column, old length) pairs)
_TABLES = {
    "contact": (("ix_contact_mobile", "ix_contact_email"), (("mobile", 32), ("email", 200))),
    "internal_user": (("ix_internal_user_mobile", "ix_internal_user_email"), (("mobile", 32), ("email", 200))),
    "lead": (("ix_lead_mobile",), (("mobile", 32), ("email", 200))),
}


def upgrade() -> None:
    for table, (indexes, columns) in _TABLES.items():
        for index in indexes:
            op.drop_index(index, table_name=table)
        for column, length in columns:
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length=length),
                            existing_nullable=True)
            op.add_column(table, sa.Column(f"{column}_hash", sa.String(length=64), nullable=True))
            op.create_index(f"ix_{table}_{column}_hash", table, [f"{column}_hash"], unique=False)


def downgrade() -> None:
    for table, (indexes, columns) in _TABLES.items():
        for column, length in columns:
            op.drop_index(f"ix_{table}_{column}_hash", table_name=table)
            op.drop_column(table, f"{column}_hash")
            # sealed values do not fit the old lengths: run `hub keys decrypt` first (not provided:
            # downgrading past this revision means giving up encryption at rest by hand)
            op.alter_column(table, column, type_=sa.String(length=length), existing_type=sa.Text(),
                            existing_nullable=True)
        for index in indexes:
            column = index.rsplit("_", 1)[1]
            op.create_index(index, table, [column], unique=False)
