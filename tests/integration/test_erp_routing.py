"""Which ERP an approved CRM order goes to is configuration, per legal entity; ERP salespeople
become owners (hub.rules.orders.route_order, hub.rules.salespeople)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from canonical_model.profile import customer_profile
from hub.contracts import Salesperson
from hub.demo.data import load_crm_demo
from hub.errors import ConfigError
from hub.rules.orders import approve_order
from hub.rules.salespeople import link_erp_salespeople
from hub.settings import OrderSettings, Settings
from tests.conftest import rows, scalar

GROUP = OrderSettings(erp=None, erp_by_entity={"XH-SZ": "kingdee", "XH-CD": "yonyou"})
PEOPLE = [
    {"crm_id": "crm-wangwei", "name": "王伟", "mobile": "13800000001", "email": "wangwei@example.com",
     "department": "华东销售部", "title": "销售代表", "manager_crm_id": None, "is_sales_rep": True},
    {"crm_id": "crm-lina", "name": "李娜", "mobile": "13800000002", "email": "lina@example.com",
     "department": "华南销售部", "title": "销售代表", "manager_crm_id": None, "is_sales_rep": True},
    {"crm_id": "crm-lina2", "name": "李娜", "mobile": "13800000003", "email": "lina2@example.com",
     "department": "华北销售部", "title": "销售代表", "manager_crm_id": None, "is_sales_rep": True},
]


@pytest.fixture
def orders(db):
    with db.begin() as conn:
        load_crm_demo(conn, PEOPLE, [{"name": "成都启明智能科技有限公司", "city": "成都"}], now=dt.datetime.now(dt.UTC),
                      orders=4)
        ids = conn.execute(sa.text("SELECT id FROM sales_order ORDER BY id")).scalars().all()
        for order_id, entity in zip(ids, ("XH-SZ", "XH-CD", "XH-BJ", None), strict=True):
            conn.execute(sa.text("UPDATE sales_order SET legal_entity = :e WHERE id = :id"), {"e": entity, "id": order_id})
    return ids


def test_each_legal_entitys_orders_go_to_its_erp_and_an_unconfigured_entity_fails_visibly(db, orders):
    with db.begin() as conn:
        queued = [approve_order(conn, order_id, routing=GROUP) for order_id in orders]
    assert [q is not None for q in queued] == [True, True, False, False]
    assert [r.kind for r in rows(db, "SELECT kind FROM outbox ORDER BY id")] == ["kingdee.sales_order",
                                                                                 "yonyou.sales_order"]
    assert rows(db, "SELECT payload->>'legal_entity' AS e FROM outbox ORDER BY id")[1].e == "XH-CD"
    unrouted = rows(db, "SELECT legal_entity, status, erp_system, erp_error, approval_state FROM sales_order "
                        "WHERE status = 'erp_unrouted' ORDER BY id")
    assert [(r.legal_entity, r.erp_system, r.approval_state) for r in unrouted] == [
        ("XH-BJ", None, "approved"), (None, None, "approved")]
    assert "XH-BJ" in unrouted[0].erp_error and "HUB_ORDERS__ERP_BY_ENTITY" in unrouted[0].erp_error
    assert "HUB_ORDERS__ERP" in unrouted[1].erp_error
    with db.begin() as conn:  # the profile shows it on the order
        customer_id = conn.execute(sa.text("SELECT customer_id FROM sales_order WHERE id = :id"),
                                   {"id": orders[2]}).scalar_one()
        shown = [o for o in customer_profile(conn, customer_id).recent_orders if o["legal_entity"] == "XH-BJ"]
    assert shown and shown[0]["status"] == "erp_unrouted" and shown[0]["erp_error"]


def test_once_the_entity_is_configured_approving_again_queues_the_push(db, orders):
    with db.begin() as conn:
        assert approve_order(conn, orders[2], routing=GROUP) is None
        fixed = GROUP.model_copy(update={"erp_by_entity": {**GROUP.erp_by_entity, "XH-BJ": "yonyou"}})
        assert approve_order(conn, orders[2], routing=fixed) is not None
    assert scalar(db, "SELECT status || ' ' || erp_system || ' ' || coalesce(erp_error, '-') FROM sales_order "
                      "WHERE id = :id", id=orders[2]) == "approved yonyou -"


def test_a_single_erp_tenant_sends_every_order_to_its_erp_whatever_the_entity(db, orders):
    with db.begin() as conn:
        for order_id in orders:
            approve_order(conn, order_id, routing=OrderSettings(erp="yonyou"))
    assert {r.kind for r in rows(db, "SELECT kind FROM outbox")} == {"yonyou.sales_order"}


def test_routing_to_a_system_that_takes_no_orders_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("HUB_ORDERS__ERP_BY_ENTITY", '{"XH-SZ": "wecom"}')
    with pytest.raises(ConfigError, match="wecom"):
        Settings()
    monkeypatch.setenv("HUB_ORDERS__ERP_BY_ENTITY", '{"XH-SZ": "yonyou"}')
    assert Settings().orders.erp_by_entity == {"XH-SZ": "yonyou"}


def test_the_routing_table_may_live_in_hub_toml(tmp_path, monkeypatch):
    config = tmp_path / "hub.toml"
    config.write_text('[orders]\nerp = "yonyou"\n[orders.erp_by_entity]\nXH-SZ = "kingdee"\n', encoding="utf-8")
    monkeypatch.setenv("HUB_CONFIG_FILE", str(config))
    assert Settings().orders == OrderSettings(erp="yonyou", erp_by_entity={"XH-SZ": "kingdee"})


def test_erp_salespeople_are_linked_by_mobile_then_a_unique_name_never_by_an_ambiguous_one(db, orders):
    with db.begin() as conn:
        counts = link_erp_salespeople(conn, "kingdee", [
            Salesperson("SP001", "王伟"), Salesperson("SP002", "李娜"), Salesperson("SP003", "赵敏"),
            Salesperson("SP004", "李娜", mobile="+86 138-0000-0003")])
        again = link_erp_salespeople(conn, "kingdee", [Salesperson("SP001", "王伟")])
    assert (counts.linked, counts.ambiguous, counts.unmatched) == (2, 1, 1)
    assert again.already_linked == 1
    linked = dict(rows(db, "SELECT e.external_id, u.external_id FROM external_identity e JOIN internal_user u "
                           "ON u.id = e.canonical_id WHERE e.object = 'salesperson'"))
    assert linked == {"SP001": "crm-wangwei", "SP004": "crm-lina2"}
