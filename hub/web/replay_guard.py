"""Accepted callback requests remembered in Postgres, so that a replay is refused everywhere.

A connector's callback receiver asks :meth:`PostgresReplayGuard.first_time` once a
request is authentic; the answer is True for exactly one request per fingerprint (the
request's signature) until the fingerprint expires, whichever web process or restart of
``hub serve`` asks: the claim is one ``INSERT ... ON CONFLICT`` on the primary key, so
two processes racing with the same request get one True between them. An expired
fingerprint is claimed again (its request's timestamp is stale by then, so the receiver
refuses it before asking); expired rows are deleted by the next claim after a minute, or
by :meth:`PostgresReplayGuard.prune`.

Times are the receiver's clock (epoch seconds), not the database's: the web processes'
clocks must agree to well within the replay window (NTP), as the timestamp check
itself already assumes.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.database import Database

PRUNE_EVERY_S = 60.0

_CLAIM = sa.text(
    "INSERT INTO callback_replay AS r (system, fingerprint, accepted_at, expires_at) "
    "VALUES (:system, :fingerprint, to_timestamp(:at), to_timestamp(:expires_at)) "
    "ON CONFLICT (system, fingerprint) DO UPDATE "
    "SET accepted_at = EXCLUDED.accepted_at, expires_at = EXCLUDED.expires_at "
    "WHERE r.expires_at <= EXCLUDED.accepted_at "
    "RETURNING 1"
)
_FORGET = sa.text("DELETE FROM callback_replay WHERE system = :system AND fingerprint = :fingerprint")
_PRUNE = sa.text("DELETE FROM callback_replay WHERE expires_at < to_timestamp(:at)")


class PostgresReplayGuard:
    """The hub's :class:`~hub.contracts.ReplayGuard` for one system's callbacks."""

    def __init__(self, db: Database, system: str) -> None:
        self.db = db
        self.system = system
        self._next_prune = 0.0

    def first_time(self, fingerprint: str, at: float, expires_at: float) -> bool:
        """Claim ``fingerprint`` until ``expires_at``; False when it is claimed and not expired."""
        if at >= self._next_prune:
            self.prune(at)
        with self.db.begin() as conn:
            claimed = conn.execute(_CLAIM, {"system": self.system, "fingerprint": fingerprint[:64], "at": at,
                                            "expires_at": expires_at}).first()
        return claimed is not None

    def forget(self, fingerprint: str) -> None:
        """Drop ``fingerprint``, so that the platform's retry of a failed delivery is accepted."""
        with self.db.begin() as conn:
            conn.execute(_FORGET, {"system": self.system, "fingerprint": fingerprint[:64]})

    def prune(self, at: float) -> int:
        """Delete fingerprints (of every system) expired before ``at``; returns how many."""
        self._next_prune = at + PRUNE_EVERY_S
        with self.db.begin() as conn:
            return conn.execute(_PRUNE, {"at": at}).rowcount
