"""Two chat platforms at once: a task completed on one says who and where; directory
lookups by mobile are rationed per platform.

- ``task.completed_by_id`` / ``task.completed_via``: who ticked a task off, and on which
  system ("crm" or the chat platform whose to-do was completed);
- ``internal_user.directory_lookup_misses``: ``{system: when}`` of the last lookup by mobile
  that found nothing, per platform (was one ``directory_lookup_missed_at`` for all: a
  DingTalk miss must not hold back the WeCom lookup). Existing misses were WeCom's;
- ``internal_user.directories``: each chat directory's view of the person (active there,
  its content hash, the manager it names), so two directories do not undo each other.
  Existing WeCom-synced rows take their WeCom view from the row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task", sa.Column("completed_by_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key("task_completed_by_id_fkey", "task", "internal_user", ["completed_by_id"], ["id"])
    op.add_column("task", sa.Column("completed_via", sa.String(32), nullable=True))
    op.add_column("internal_user", sa.Column("directory_lookup_misses", JSONB(), nullable=False,
                                             server_default=sa.text("'{}'::jsonb")))
    op.execute("UPDATE internal_user SET directory_lookup_misses = jsonb_build_object('wecom', "
               "directory_lookup_missed_at) WHERE directory_lookup_missed_at IS NOT NULL")
    op.drop_column("internal_user", "directory_lookup_missed_at")
    op.add_column("internal_user", sa.Column("directories", JSONB(), nullable=False,
                                             server_default=sa.text("'{}'::jsonb")))
    op.execute("UPDATE internal_user SET directories = jsonb_build_object('wecom', jsonb_build_object("
               "'active', active, 'hash', content_hash, 'manager_ref', manager_ref)) "
               "WHERE wecom_userid IS NOT NULL AND content_hash IS NOT NULL")


def downgrade() -> None:
    op.drop_column("internal_user", "directories")
    op.add_column("internal_user", sa.Column("directory_lookup_missed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE internal_user SET directory_lookup_missed_at = (SELECT max(CAST(value #>> '{}' AS "
               "timestamptz)) FROM jsonb_each(directory_lookup_misses))")
    op.drop_column("internal_user", "directory_lookup_misses")
    op.drop_column("task", "completed_via")
    op.drop_constraint("task_completed_by_id_fkey", "task", type_="foreignkey")
    op.drop_column("task", "completed_by_id")
