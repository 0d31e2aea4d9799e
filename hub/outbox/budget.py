"""Per-recipient send budgets in Postgres, shared by every dispatcher process.

Some platforms cap what one app may send one person and drop the excess *silently*
(WeCom: 30 messages a minute and 1,000 an hour per app per member, messaging-apis.md
§1.4). A connector declares such a limit as a :class:`~hub.contracts.SendBudget`; the
dispatcher spends it here before it calls the writer, so two dispatchers (threads,
processes, machines) never spend the same budget twice.

One row per send (``send_budget_spend``). :func:`reserve` calls the database function
``reserve_send`` (migration 0025), one round trip: it takes a transaction-level advisory lock on
(schema, scope, recipient), counts the sends in each sliding window (after the lock is granted,
so a reservation that waited sees the send it waited for) and either inserts the new send or
answers how long to wait. The windows are sliding, as the platform's are: at most ``limit``
sends whose time lies in any ``seconds``-long window.

Times are Postgres's ``clock_timestamp()`` (one clock for every dispatcher). While a
send is in flight its row lies ``unsettled_s`` in the future, i.e. it counts as sent as
late as the send could reach the platform; :func:`settle` moves it to when the reply
came back (by then the platform has it), :func:`release` deletes it when the platform
refused the call. A dispatcher that dies mid-send leaves the conservative time in place.

The three are sent prepared on the driver's connection (``hub.prepared``), in the caller's
transaction: each chat message costs a reservation and a settlement.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from hub import prepared
from hub.contracts import SendBudget

_RESERVE = ("SELECT spend_id, wait_s FROM reserve_send(%(scope)s, %(recipient)s, CAST(%(seconds)s AS float8[]), "
            "CAST(%(limits)s AS integer[]), CAST(%(unsettled)s AS float8), CAST(%(outbox_id)s AS bigint))")
_SETTLE = "UPDATE send_budget_spend SET spent_at = LEAST(spent_at, clock_timestamp()) WHERE id = %(id)s"
_RELEASE = "DELETE FROM send_budget_spend WHERE id = %(id)s"


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
    (spend_id, wait_s), = prepared.execute(conn, _RESERVE, {
        "scope": budget.scope, "recipient": recipient, "seconds": [float(w.seconds) for w in budget.windows],
        "limits": [int(w.limit) for w in budget.windows], "unsettled": float(budget.unsettled_s),
        "outbox_id": outbox_id})
    if spend_id is None:
        return Reservation(None, float(wait_s))
    return Reservation(int(spend_id))


def settle(conn: Connection, spend_id: int) -> None:
    """The send's reply came back: it reached the platform no later than now."""
    prepared.execute(conn, _SETTLE, {"id": spend_id})


def release(conn: Connection, spend_id: int) -> None:
    """The platform refused the send (nothing was delivered): give the budget back."""
    prepared.execute(conn, _RELEASE, {"id": spend_id})


__all__ = ["Reservation", "release", "reserve", "settle"]
