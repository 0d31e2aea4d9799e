"""A version of the customer links, moved by every change that repoints one (issue 18, engine speed).

A sync page looks up the golden customer of each external customer id it carries
(``hub.engine.targets.customer_ids_for``): for a first load of 200,000 receivables, 40
look-ups of about 2,000 ids each, about half a second on the writer thread, the engine's
critical path. A run may remember what it looked up (``hub.engine.targets.CustomerLinks``)
only if it learns when an answer it remembers stops being true: an existing link is
repointed to another customer, changes its key, or is deleted. This counter moves, in the
same transaction, whenever one of these happens, whoever does it (a person's merge, a sync
re-linking a record, a hand-written UPDATE): the triggers below, not each writer, keep it.
A new link changes no earlier answer and does not move it.

One row for all systems: a repoint is rare (a merge, a re-linked record), and a page reads
the counter in the statement that takes its links' lock, so remembering costs no round trip.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_links_version",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO customer_links_version (id, version) VALUES (1, 0)")
    # The table is named through the trigger's own schema: each tenant schema has its own
    # counter, whatever the session's search_path.
    op.execute("""
        CREATE FUNCTION customer_links_moved() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            EXECUTE format('UPDATE %I.customer_links_version SET version = version + 1', TG_TABLE_SCHEMA);
            RETURN NULL;
        END $$
    """)
    # Takes the lock, then reads the version in a statement of its own: a VOLATILE function's
    # statements each take a fresh snapshot (PostgreSQL docs, "Function Volatility
    # Categories"), so a page that waited for a merge reads the version the merge left. Read
    # in the statement that waited, the version would be the one from before the wait.
    op.execute("""
        CREATE FUNCTION hold_customer_links(lock_key bigint, exclusive boolean) RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            seen bigint;
        BEGIN
            IF exclusive THEN
                PERFORM pg_advisory_xact_lock(lock_key);
            ELSE
                PERFORM pg_advisory_xact_lock_shared(lock_key);
            END IF;
            SELECT version INTO seen FROM customer_links_version WHERE id = 1;
            RETURN seen;
        END $$
    """)
    op.execute(
        "CREATE TRIGGER customer_link_changed AFTER UPDATE OF system, object, external_id, canonical_id "
        "ON external_identity FOR EACH ROW WHEN ((OLD.object = 'customer' OR NEW.object = 'customer') AND "
        "(OLD.system, OLD.object, OLD.external_id, OLD.canonical_id) IS DISTINCT FROM "
        "(NEW.system, NEW.object, NEW.external_id, NEW.canonical_id)) EXECUTE FUNCTION customer_links_moved()")
    op.execute(
        "CREATE TRIGGER customer_link_deleted AFTER DELETE ON external_identity "
        "FOR EACH ROW WHEN (OLD.object = 'customer') EXECUTE FUNCTION customer_links_moved()")
    op.execute(
        "CREATE TRIGGER customer_links_truncated AFTER TRUNCATE ON external_identity "
        "FOR EACH STATEMENT EXECUTE FUNCTION customer_links_moved()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS customer_links_truncated ON external_identity")
    op.execute("DROP TRIGGER IF EXISTS customer_link_deleted ON external_identity")
    op.execute("DROP TRIGGER IF EXISTS customer_link_changed ON external_identity")
    op.execute("DROP FUNCTION IF EXISTS customer_links_moved()")
    op.execute("DROP FUNCTION IF EXISTS hold_customer_links(bigint, boolean)")
    op.drop_table("customer_links_version")
