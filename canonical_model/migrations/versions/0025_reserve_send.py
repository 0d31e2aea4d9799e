"""A send budget's reservation in one round trip: the database function ``reserve_send`` (issue 18).

``hub.outbox.budget.reserve`` took a per-recipient lock, counted the sends in each sliding
window, forgot the old ones and inserted the new send: five statements, each a round trip
and SQLAlchemy's per-statement work, for every chat message the dispatcher sends (about a
third of a WeCom reminder's outcome work, cProfile of 300 reminders with one worker). The
function does the same in one call.

It keeps the one subtle point of the five statements: the windows are counted *after* the
lock is granted, each in a snapshot taken then. A VOLATILE function's statements each take a
fresh snapshot (PostgreSQL docs, "Function Volatility Categories"), so a reservation that
waited for another one's lock sees the send that one inserted (in one statement, the count
would read the snapshot from before the wait and overspend the budget). The lock key is the
one the five statements used, so a dispatcher of the previous version running during an
upgrade still excludes this one.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION reserve_send(p_scope text, p_recipient text, p_seconds float8[], p_limits integer[],
                                     p_unsettled float8, p_outbox_id bigint,
                                     OUT spend_id bigint, OUT wait_s float8)
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            now_at timestamptz;
            until_free float8;
            horizon float8 := p_unsettled;
        BEGIN
            PERFORM pg_advisory_xact_lock(
                hashtextextended(current_schema() || '|send-budget|' || p_scope || '|' || p_recipient, 0));
            now_at := clock_timestamp();
            wait_s := 0;
            FOR i IN 1 .. coalesce(array_length(p_seconds, 1), 0) LOOP
                -- the limit-th newest send in the window: the budget has room once it leaves it
                SELECT EXTRACT(EPOCH FROM s.spent_at + make_interval(secs => p_seconds[i]) - now_at)
                  INTO until_free
                  FROM send_budget_spend s
                 WHERE s.scope = p_scope AND s.recipient = p_recipient
                   AND s.spent_at > now_at - make_interval(secs => p_seconds[i])
                 ORDER BY s.spent_at DESC OFFSET p_limits[i] - 1 LIMIT 1;
                IF until_free IS NOT NULL AND until_free > wait_s THEN
                    wait_s := until_free;
                END IF;
                horizon := greatest(horizon, p_seconds[i] + p_unsettled);
            END LOOP;
            IF wait_s > 0 THEN
                spend_id := NULL;
                RETURN;
            END IF;
            DELETE FROM send_budget_spend
             WHERE scope = p_scope AND recipient = p_recipient
               AND spent_at < now_at - make_interval(secs => horizon);
            INSERT INTO send_budget_spend (scope, recipient, spent_at, outbox_id)
            VALUES (p_scope, p_recipient, now_at + make_interval(secs => p_unsettled), p_outbox_id)
            RETURNING id INTO spend_id;
        END $$
    """)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS reserve_send(text, text, float8[], integer[], float8, bigint)")
