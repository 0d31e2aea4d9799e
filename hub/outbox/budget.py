"""Per-recipient send budgets in Postgres, shared by every dispatcher process.

Some platforms cap what one app may send one person and drop the excess *silently*
(WeCom: 30 messages a minute and 1,000 an hour per app per member, messaging-apis.md
§1.4). A connector declares such a limit as a :class:`~hub.contracts.SendBudget`; the
dispatcher spends it here before it calls the writer, so two dispatchers (threads,
processes, machines) never spend the same budget twice.

One row per send (``send_budget_spend``). :func:`reserve` takes a transaction-level
advisory lock on (schema, scope, recipient), counts the sends in each sliding window and
either inserts the new send or answers how long to wait. The windows are sliding, as the
platform's are: at most ``limit`` sends whose time lies in any ``seconds``-long window.

Times are Postgres's ``clock_timestamp()`` (one clock for every dispatcher). While a
send is in flight its row lies ``unsettled_s`` in the future, i.e. it counts as sent as
late as the send could reach the platform; :func:`settle` moves it to when the reply
came back (by then the platform has it), :func:`release` deletes it when the platform
refused the call. A dispatcher that dies mid-send leaves the conservative time in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.contracts import SendBudget

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '|send-budget|' || :scope "
                "|| '|' || :recipient, 0)), clock_timestamp()")
_NTH_NEWEST = sa.text(
    "SELECT EXTRACT(EPOCH FROM spent_at + make_interval(secs => :seconds) - CAST(:now AS timestamptz)) "
    "FROM send_budget_spend WHERE scope = :scope AND recipient = :recipient "
    "AND spent_at > CAST(:now AS timestamptz) - make_interval(secs => :seconds) "
    "ORDER BY spent_at DESC OFFSET :skip LIMIT 1")
_SPEND = sa.text(
    "INSERT INTO send_budget_spend (scope, recipient, spent_at, outbox_id) "
    "VALUES (:scope, :recipient, CAST(:now AS timestamptz) + make_interval(secs => :unsettled), :outbox_id) "
    "RETURNING id")
_FORGET_OLD = sa.text(
    "DELETE FROM send_budget_spend WHERE scope = :scope AND recipient = :recipient "
    "AND spent_at < CAST(:now AS timestamptz) - make_interval(secs => :horizon)")


@dataclass(frozen=True)
class Reservation:
    """A send spent (``spend_id``), or the seconds until the budget has room (``wait_s``)."""

    spend_id: int | None
    wait_s: float = 0.0

    @property
    def granted(self) -> bool:
        """True when the send may go now."""
        return self.spend_id is not None


def reserve(conn: Connection, budget: SendBudget, recipient: str, outbox_id: int | None = None) -> Reservation:
    """Spend one send to ``recipient`` if every window of ``budget`` has room (caller's transaction)."""
    params = {"scope": budget.scope, "recipient": recipient}
    now = conn.execute(_LOCK, params).one()[1]
    waits = [0.0]
    for window in budget.windows:
        until_free = conn.execute(_NTH_NEWEST, {**params, "now": now, "seconds": window.seconds,
                                                "skip": window.limit - 1}).scalar()
        if until_free is not None:
            waits.append(float(until_free))
    if max(waits) > 0:
        return Reservation(None, max(waits))
    horizon = max((w.seconds for w in budget.windows), default=0.0) + budget.unsettled_s
    conn.execute(_FORGET_OLD, {**params, "now": now, "horizon": horizon})
    spend_id = conn.execute(_SPEND, {**params, "now": now, "unsettled": budget.unsettled_s,
                                     "outbox_id": outbox_id}).scalar_one()
    return Reservation(int(spend_id))


def settle(conn: Connection, spend_id: int) -> None:
    """The send's reply came back: it reached the platform no later than now."""
    conn.execute(sa.text("UPDATE send_budget_spend SET spent_at = LEAST(spent_at, clock_timestamp()) "
                         "WHERE id = :id"), {"id": spend_id})


def release(conn: Connection, spend_id: int) -> None:
    """The platform refused the send (nothing was delivered): give the budget back."""
    conn.execute(sa.text("DELETE FROM send_budget_spend WHERE id = :id"), {"id": spend_id})


__all__ = ["Reservation", "release", "reserve", "settle"]
