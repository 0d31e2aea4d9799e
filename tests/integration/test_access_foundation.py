"""Access foundations: who sees which customers, and a key names one write."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import HTTPException

from hub.access import Principal, Role
from hub.access.visibility import can_see_customer, scope_of
from hub.web.idempotency import Answer, run_once
from tests.conftest import scalar


def _people_and_customers(conn: sa.Connection) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name, manager in (("boss", None), ("lead", "boss"), ("rep", "lead"), ("other", None)):
        ids[name] = conn.execute(sa.text(
            "INSERT INTO internal_user (name, manager_id, source_system, external_id) "
            "VALUES (:n, :m, 'wecom', :n) RETURNING id"), {"n": name, "m": ids.get(manager or "")}).scalar_one()
    for name, owner in (("c_rep", "rep"), ("c_other", "other"), ("c_pool", None)):
        ids[name] = conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name, owner_id) VALUES (:n, :n, :o) RETURNING id"),
            {"n": name, "o": ids.get(owner or "")}).scalar_one()
    return ids


def _principal(role: Role, user_id: int | None) -> Principal:
    return Principal(role=role, user_id=user_id, name="t", via="token", ref=f"token:{user_id}")


def test_sales_see_their_own_managers_their_whole_team_and_the_pool(db):
    with db.engine.begin() as conn:
        ids = _people_and_customers(conn)
        visible = {
            who: {c for c in ("c_rep", "c_other", "c_pool") if can_see_customer(conn, _principal(role, ids.get(who)), ids[c])}
            for who, role in (("rep", Role.SALES), ("lead", Role.MANAGER), ("boss", Role.MANAGER))
        }
        finance = scope_of(conn, _principal(Role.FINANCE, None))
        it = scope_of(conn, _principal(Role.IT, None))
    assert visible == {"rep": {"c_rep"}, "lead": {"c_rep", "c_pool"}, "boss": {"c_rep", "c_pool"}}
    assert finance.all_customers and finance.sees_owner(None)
    assert not it.sees_owner(ids["rep"]) and not it.sees_owner(None)


def test_a_repeated_key_returns_the_first_answer_and_a_different_body_is_refused(db):
    principal = _principal(Role.CRM, None)
    writes = []

    def write(conn: sa.Connection) -> Answer:
        writes.append(1)
        return Answer(201, {"id": len(writes)})

    with db.engine.begin() as conn:
        first = run_once(conn, principal, "k1", method="POST", path="/api/x", body=b"{}", write=write)
    with db.engine.begin() as conn:
        again = run_once(conn, principal, "k1", method="POST", path="/api/x", body=b"{}", write=write)
    assert (first.body, again.body, again.replayed, len(writes)) == ({"id": 1}, {"id": 1}, True, 1)
    with db.engine.begin() as conn:
        try:
            run_once(conn, principal, "k1", method="POST", path="/api/x", body=b'{"a":1}', write=write)
        except HTTPException as exc:
            assert exc.status_code == 422
        else:
            raise AssertionError("a different body under the same key was accepted")
    assert len(writes) == 1
    assert scalar(db, "SELECT count(*) FROM idempotency_key") == 1
