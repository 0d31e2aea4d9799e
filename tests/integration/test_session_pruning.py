"""Old sign-in sessions are pruned: the web app's background task calls
:func:`hub.web.app.prune_old_sessions` at start-up and hourly; it deletes only sessions that
expired or were revoked more than the retention margin ago, never a live one or a recent one."""

from __future__ import annotations

import sqlalchemy as sa

from hub.access import Role
from hub.access.accounts import start_session
from hub.access.principal import Principal
from hub.web.app import SESSION_RETENTION_DAYS, prune_old_sessions
from tests.conftest import scalar


def _session(db, label: str, *, expired_days_ago: float | None = None, revoked_days_ago: float | None = None) -> int:
    principal = Principal(role=Role.FINANCE, user_id=None, name=label, via="password", ref=f"test:{label}")
    with db.engine.begin() as conn:
        start_session(conn, principal, hours=8)
        session_id = int(conn.execute(sa.text("SELECT max(id) FROM web_session")).scalar_one())
        if expired_days_ago is not None:
            conn.execute(sa.text("UPDATE web_session SET expires_at = now() - make_interval(days => :d) "
                                 "WHERE id = :id"), {"d": expired_days_ago, "id": session_id})
        if revoked_days_ago is not None:
            conn.execute(sa.text("UPDATE web_session SET revoked_at = now() - make_interval(days => :d) "
                                 "WHERE id = :id"), {"d": revoked_days_ago, "id": session_id})
    return session_id


def test_given_old_and_recent_sessions_when_pruned_then_only_the_long_dead_ones_go(db):
    margin = SESSION_RETENTION_DAYS
    live = _session(db, "live")
    recently_expired = _session(db, "recently-expired", expired_days_ago=1)
    recently_revoked = _session(db, "recently-revoked", revoked_days_ago=1)
    long_expired = _session(db, "long-expired", expired_days_ago=margin + 1)
    long_revoked = _session(db, "long-revoked", revoked_days_ago=margin + 1)

    assert prune_old_sessions(db) == 2

    with db.engine.connect() as conn:
        left = set(conn.execute(sa.text("SELECT id FROM web_session")).scalars())
    assert left == {live, recently_expired, recently_revoked}
    assert long_expired not in left and long_revoked not in left
    assert prune_old_sessions(db) == 0  # a second round finds nothing more
    assert scalar(db, "SELECT count(*) FROM web_session") == 3
