"""A small sales organisation for the CRM API's tests, with a token per role.

Two teams: 王经理 (manager) leads 张三 (sales); 李四 (sales) is in another team. Customers:
张三's, 李四's, and one in the public pool, each with a valid credit code, a receivable
overdue and one not yet due. Tokens: one per role (sales acts as 张三, manager as 王经理),
plus ``other_sales`` acting as 李四.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from canonical_model.profile import business_today
from hub.access import Role
from hub.database import Database
from hub.demo.data import demo_credit_code
from hub.identity import normalize_company_name
from tests.support.access import bearer, issue_token


@dataclass
class World:
    """Ids and tokens of the organisation (see the module docstring)."""

    users: dict[str, int]
    customers: dict[str, int]
    credit_codes: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of ``who`` (a role name or ``other_sales``)."""
        return bearer(self.tokens[who])


def build_world(db: Database, today: dt.date | None = None) -> World:
    """Insert the organisation and issue the tokens."""
    today = today or business_today()  # the hub's timezone (default settings): aging counts in it
    users: dict[str, int] = {}
    customers: dict[str, int] = {}
    codes: dict[str, str] = {}
    with db.begin() as conn:
        for key, name, manager in (("manager", "王经理", None), ("rep", "张三", "manager"), ("other", "李四", None)):
            users[key] = conn.execute(sa.text(
                "INSERT INTO internal_user (name, manager_id, source_system, external_id) VALUES (:n, :m, 'crm', :x) "
                "RETURNING id"), {"n": name, "m": users.get(manager or ""), "x": f"u-{key}"}).scalar_one()
        for serial, (key, name, owner) in enumerate((("mine", "上海张三客户科技有限公司", "rep"),
                                                     ("theirs", "北京李四客户贸易有限公司", "other"),
                                                     ("pool", "广州公海客户制造有限公司", None)), start=7001):
            codes[key] = demo_credit_code(serial)
            customers[key] = conn.execute(sa.text(
                "INSERT INTO customer (name, normalized_name, credit_code, owner_id) VALUES (:n, :nn, :cc, :o) "
                "RETURNING id"), {"n": name, "nn": normalize_company_name(name), "cc": codes[key],
                                  "o": users.get(owner or "")}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
                "VALUES ('crm', 'customer', :x, 'customer', :c)"), {"x": f"crm-{key}", "c": customers[key]})
            for n, (days, amount) in enumerate(((40, "1200.50"), (-10, "300.00"))):
                bill = f"AR-{key}-{n}"
                due = today - dt.timedelta(days=days)
                conn.execute(sa.text(
                    "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, "
                    "open_amount, source_system, external_id) VALUES (:c, :b, :bd, :d, 'CNY', :a, :a, 'kingdee', :b)"),
                    {"c": customers[key], "b": bill, "bd": due - dt.timedelta(days=30), "d": due,
                     "a": Decimal(amount)})
    world = World(users, customers, codes)
    for role in Role:
        user = {Role.SALES: users["rep"], Role.MANAGER: users["manager"]}.get(role)
        world.tokens[role.value] = issue_token(db, role, user_id=user, label=f"test-{role.value}")
    world.tokens["other_sales"] = issue_token(db, Role.SALES, user_id=users["other"], label="test-other")
    return world
