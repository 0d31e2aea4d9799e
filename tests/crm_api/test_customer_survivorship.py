"""The CRM's owner survives ERP syncs of the same company, whichever comes first (hub.survivorship)."""

from __future__ import annotations

import datetime as dt

from canonical_model.profile import customer_profile
from hub.contracts import StreamSpec
from hub.demo.data import demo_credit_code
from hub.engine import sync_stream
from tests.conftest import rows
from tests.support.customer_streams import hand_written_customers


def kingdee_customers() -> StreamSpec:
    return hand_written_customers("kingdee", "BD_Customer", modified_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))


def link_salesperson(db, number: str, user_id: int) -> None:
    with db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES ('kingdee', 'salesperson', %s, 'internal_user', %s)", (number, user_id))


def test_the_crm_owner_survives_an_erp_naming_another_salesperson_in_either_order(api, world, db):
    link_salesperson(db, "S-LI", world.users["other"])
    erp_first, crm_first = demo_credit_code(8101), demo_credit_code(8102)
    # given company 1 in Kingdee (salesperson 李四) before the CRM posts it as 张三's,
    sync_stream(db, "kingdee", kingdee_customers(), [
        {"id": "CUST81", "name": "南京先锋仪器有限公司", "code": erp_first, "owner": "S-LI", "region": "江苏"}])
    reply = api.post("/api/customers", headers=world.auth("admin"), json={
        "external_id": "crm-81", "name": "南京先锋仪器有限公司", "credit_code": erp_first,
        "owner_id": world.users["rep"]})
    assert reply.status_code == 200, reply.text
    # and company 2 posted by 张三 before Kingdee syncs it with 李四
    reply = api.post("/api/customers", headers=world.auth("sales"), json={
        "external_id": "crm-82", "name": "南京后浪仪器有限公司", "credit_code": crm_first})
    assert reply.status_code == 201, reply.text
    sync_stream(db, "kingdee", kingdee_customers(), [
        {"id": "CUST82", "name": "南京后浪仪器有限公司", "code": crm_first, "owner": "S-LI", "region": "江苏"}])
    # when the CRM updates company 2 without naming an owner
    reply = api.post("/api/customers", headers=world.auth("sales"), json={
        "external_id": "crm-82", "name": "南京后浪仪器有限公司", "industry": "仪器仪表"})
    assert reply.status_code == 200, reply.text

    # then both are 张三's, by the CRM's word, with Kingdee's region; Kingdee's 李四 shows as a disagreement
    for code in (erp_first, crm_first):
        row = rows(db, "SELECT id, owner_id, region, field_sources, pool_since FROM customer WHERE credit_code = :c",
                   c=code)[0]
        assert (row.owner_id, row.field_sources["owner_id"]["system"]) == (world.users["rep"], "crm")
        assert (row.region, row.pool_since) == ("江苏", None)
        with db.begin() as conn:
            profile = customer_profile(conn, row.id)
        assert profile is not None and profile.disagreements == ["owner_id"]
        assert [(v["system"], v["value"], v["shown"], v["chosen"]) for v in profile.field_values["owner_id"]] == [
            ("crm", world.users["rep"], "张三", True), ("kingdee", world.users["other"], "李四", False)]
