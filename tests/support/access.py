"""Credentials for tests (API tokens and sessions, stored as the hub stores them) and a small
data set of two sales teams and the public pool for role and visibility tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from hub.access import Role
from hub.access.secrets import API_TOKEN_PREFIX, SESSION_PREFIX, new_token, token_hash
from hub.database import Database


def issue_token(db: Database, role: Role | str, *, user_id: int | None = None, label: str = "test",
                expires_in_s: float = 3600.0) -> str:
    """A valid bearer token for ``role`` (acting as ``user_id`` when given); the text, shown once."""
    token = new_token(API_TOKEN_PREFIX)
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO api_token (token_hash, prefix, label, role, user_id, expires_at) "
            "VALUES (:h, :p, :l, :r, :u, now() + make_interval(secs => :s))"),
            {"h": token_hash(token), "p": token[:12], "l": label, "r": Role(role).value, "u": user_id,
             "s": expires_in_s})
    return token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def issue_session(db: Database, role: Role | str, *, user_id: int | None = None, via: str = "password",
                  expires_in_s: float = 3600.0) -> str:
    """A valid ``hub_session`` cookie value for ``role`` (as ``user_id``), stored hashed like a sign-in's."""
    token = new_token(SESSION_PREFIX)
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO web_session (token_hash, role, user_id, via, expires_at) "
            "VALUES (:h, :r, :u, :v, now() + make_interval(secs => :s))"),
            {"h": token_hash(token), "r": Role(role).value, "u": user_id, "v": via, "s": expires_in_s})
    return token


@dataclass(frozen=True)
class Teams:
    """Two sales teams and the public pool, for role and visibility tests.

    alice (WeCom ``alice.sbx``) reports to manager mia; bob is in another team. Each owns
    one customer with a contact (mobile and e-mail); one customer is in the pool; each
    customer has an open task, and bob has a task with no customer.
    """

    alice: int
    bob: int
    mia: int
    alice_customer: int
    bob_customer: int
    pool_customer: int
    alice_task: int
    bob_task: int
    bob_loose_task: int

    CONTACT_MOBILE = "13812345678"
    CONTACT_EMAIL = "zhaocaigou@corp.cn"


def build_teams(db: Database, *, alice_wecom: str = "alice.sbx", alice_dingtalk: str = "alice.ding",
                bob_wecom: str = "bob.sbx") -> Teams:
    """Insert the :class:`Teams` data set; returns its ids."""
    def one(conn: sa.Connection, sql: str, **params: object) -> int:
        return int(conn.execute(sa.text(sql + " RETURNING id"), params).scalar_one())

    with db.engine.begin() as conn:
        mia = one(conn, "INSERT INTO internal_user (name, mobile, source_system, external_id) "
                        "VALUES ('米娅', '13900001111', 'crm', 'u-mia')")
        alice = one(conn, "INSERT INTO internal_user (name, mobile, wecom_userid, dingtalk_userid, manager_id, "
                          "source_system, external_id) VALUES ('艾丽丝', '13700002222', :w, :d, :m, 'crm', 'u-alice')",
                    w=alice_wecom, d=alice_dingtalk, m=mia)
        bob = one(conn, "INSERT INTO internal_user (name, wecom_userid, source_system, external_id) "
                        "VALUES ('鲍勃', :w, 'crm', 'u-bob')", w=bob_wecom)
        customers = {}
        for key, name, owner in (("alice", "苏州艾丽丝测试有限公司", alice), ("bob", "无锡鲍勃测试有限公司", bob),
                                 ("pool", "常州公海测试有限公司", None)):
            customers[key] = one(conn, "INSERT INTO customer (name, normalized_name, owner_id) VALUES (:n, :n, :o)",
                                 n=name, o=owner)
            conn.execute(sa.text(
                "INSERT INTO contact (customer_id, name, title, mobile, email, source_system, external_id) "
                "VALUES (:c, '赵采购', '采购总监', :m, :e, 'crm', :x)"),
                {"c": customers[key], "m": Teams.CONTACT_MOBILE, "e": Teams.CONTACT_EMAIL, "x": f"contact-{key}"})
        due = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        tasks = {}
        for key, customer, assignee in (("alice", customers["alice"], alice), ("bob", customers["bob"], bob),
                                        ("loose", None, bob)):
            tasks[key] = one(conn, "INSERT INTO task (title, customer_id, assignee_id, due_at) VALUES (:t, :c, :a, :d)",
                             t=f"跟进 {key}", c=customer, a=assignee, d=due)
    return Teams(alice, bob, mia, customers["alice"], customers["bob"], customers["pool"], tasks["alice"],
                 tasks["bob"], tasks["loose"])
