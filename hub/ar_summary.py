"""The receivables report's summary tables, rebuilt whole (issue 17: the report at 500,000 bills).

The report aggregates every open bill (aging per currency, overdue per customer, credit
used) and the whole ledger (the DSO trend). Done per page view, that is a pass over every
bill; instead :func:`refresh_receivables_summary` writes

- ``ar_customer_balance``: per currency and customer with open bills, the open and overdue
  amounts, the aging buckets (:data:`canonical_model.profile.AGING_COLUMNS`, the profile's
  one definition) and the oldest overdue bill's days, all as of a business date;
- ``ar_daily``: per currency and day, the bills issued and the receipts received (the DSO
  trend's ledger identity needs nothing else);
- ``report_snapshot`` row ``receivables``: that business date and when the rebuild ran (the
  page shows both: "as of").

Each rebuild is one transaction (a reader in its repeatable-read snapshot sees the old
tables or the new ones, never half), serialised by an EXCLUSIVE lock that still lets pages
read. It runs after each sync of a receivable or receipt stream
(:mod:`hub.rules.receivables_summary`) and after a customer merge moves bills
(:func:`hub.conflicts.resolve_conflict`); about a second at 500,000 bills.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from canonical_model.profile import AGING_COLUMNS

SNAPSHOT = "receivables"

_BALANCES = sa.text(f"""
    INSERT INTO ar_customer_balance (currency, customer_id, open_amount, overdue, not_due, b1_30, b31_60, b61_90,
                                     bover_90, open_bills, oldest_days)
    SELECT currency, customer_id, open_amount, COALESCE(overdue, 0), COALESCE(not_due, 0), COALESCE(b1_30, 0),
           COALESCE(b31_60, 0), COALESCE(b61_90, 0), COALESCE(bover_90, 0), bills, oldest_days
    FROM (SELECT currency, customer_id, {AGING_COLUMNS}, count(*) AS bills,
                 max(:d - due_date) FILTER (WHERE due_date < :d) AS oldest_days
          FROM receivable WHERE open_amount > 0 GROUP BY currency, customer_id) per_customer
""")

_DAILY = sa.text("""
    INSERT INTO ar_daily (currency, day, billed, received, bills)
    SELECT currency, day, sum(billed), sum(received), sum(bills) FROM (
        SELECT currency, bill_date AS day, sum(amount) AS billed, 0 AS received, count(*) AS bills
        FROM receivable GROUP BY currency, bill_date
        UNION ALL
        SELECT currency, receipt_date, 0, sum(amount), 0 FROM receipt GROUP BY currency, receipt_date
    ) days GROUP BY currency, day
""")


def refresh_receivables_summary(conn: Connection, as_of: dt.date | None = None) -> dt.date | None:
    """Rebuild the summary (module doc) on ``conn``, in its transaction, aged as of ``as_of``
    (None: the date of the last rebuild, for a rebuild because bills moved, not because the
    day changed; nothing is done when there was none). Returns the date used."""
    conn.execute(sa.text("LOCK TABLE report_snapshot, ar_customer_balance, ar_daily IN EXCLUSIVE MODE"))
    if as_of is None:
        as_of = conn.execute(sa.text("SELECT as_of FROM report_snapshot WHERE name = :n"), {"n": SNAPSHOT}).scalar()
        if as_of is None:
            return None
    conn.execute(sa.text("DELETE FROM ar_customer_balance"))
    conn.execute(sa.text("DELETE FROM ar_daily"))
    conn.execute(_BALANCES, {"d": as_of})
    conn.execute(_DAILY)
    conn.execute(sa.text(
        "INSERT INTO report_snapshot (name, as_of, refreshed_at) VALUES (:n, :d, clock_timestamp()) "
        "ON CONFLICT (name) DO UPDATE SET as_of = EXCLUDED.as_of, refreshed_at = EXCLUDED.refreshed_at"),
        {"n": SNAPSHOT, "d": as_of})
    return as_of
