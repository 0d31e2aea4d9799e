"""The 360° profile page shows what the database says: figures, provenance, tasks, escaping."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from canonical_model.profile import customer_profile
from hub.web.formatting import money
from tests.web.conftest import CALLBACK_TOKEN, WebData
from tests.web.pagescan import scan

HEADINGS = ("基本信息", "联系人/决策链", "应收/回款/信用", "订单", "待办", "互动记录", "审批", "数据完整性")


def sql_receivables(web_data: WebData, customer_id: int, as_of: dt.date) -> dict[str, dict[str, Decimal]]:
    """Open, overdue and aging per currency, computed here independently of the profile query."""
    out: dict[str, dict[str, Decimal]] = {}
    with web_data.db.engine.connect() as conn:
        for currency, due, open_amount in conn.execute(sa.text(
                "SELECT currency, due_date, open_amount FROM receivable WHERE customer_id = :c AND open_amount > 0"),
                {"c": customer_id}):
            days = (as_of - due).days
            bucket = ("not_due" if days <= 0 else "1_30" if days <= 30 else "31_60" if days <= 60
                      else "61_90" if days <= 90 else "over_90")
            figures = out.setdefault(currency, {k: Decimal("0") for k in
                                                ("open", "overdue", "bills", "not_due", "1_30", "31_60", "61_90",
                                                 "over_90")})
            figures["open"] += open_amount
            figures[bucket] += open_amount
            figures["bills"] += 1
            if days > 0:
                figures["overdue"] += open_amount
    return out


def page_receivables(html: str) -> dict[str, dict[str, Decimal]]:
    page = scan(html)
    out: dict[str, dict[str, Decimal]] = {}
    for element in page.all("open"):
        currency = element.attrs["data-currency"]
        figures = out.setdefault(currency, {})
        figures["open"] = element.amount
        figures["overdue"] = page.one("overdue", currency=currency).amount
        figures["bills"] = Decimal(page.one("open-bills", currency=currency).text)
        for bucket in page.all("aging", currency=currency):
            figures[bucket.attrs["data-bucket"]] = bucket.amount
    return out


def as_of_on(html: str) -> dt.date:
    found = re.search(r"数据截至 (\d{4}-\d{2}-\d{2})", html)
    assert found, "the page says which date its aging counts from"
    return dt.date.fromisoformat(found.group(1))


def test_focus_customer_receivables_credit_and_aging_match_the_bills(client, web_data):
    reply = client.get(f"/customers/{web_data.focus_id}")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    as_of = as_of_on(reply.text)
    assert as_of == web_data.today
    shown = page_receivables(reply.text)
    assert shown == sql_receivables(web_data, web_data.focus_id, as_of)
    # and the numbers known in advance (see build_focus_customer)
    assert shown["CNY"] == {"open": Decimal("2630.00"), "overdue": Decimal("1550.00"), "bills": 8,
                            "not_due": Decimal("1080.00"), "1_30": Decimal("300.00"), "31_60": Decimal("300.00"),
                            "61_90": Decimal("400.00"), "over_90": Decimal("550.00")}
    assert shown["USD"]["overdue"] == Decimal("1234.56") and shown["USD"]["not_due"] == Decimal("10.00")
    page = scan(reply.text)
    # credit in the customer's currency only (USD is not added to a CNY limit)
    assert page.one("credit-used").amount == Decimal("2630.00")
    assert page.one("credit-limit").amount == Decimal("2000.00")
    assert "630.00" in page.one("over-limit").text and "超出信用额度" in page.one("over-limit").text
    assert "USD 应收未折算计入" in page.one("credit-currency-note").text


def test_synced_kingdee_customer_figures_equal_sql(client, web_data):
    reply = client.get(f"/customers/{web_data.erp_customer_id}")
    assert reply.status_code == 200
    expected = sql_receivables(web_data, web_data.erp_customer_id, as_of_on(reply.text))
    assert expected, "the synced customer has open receivables"
    assert page_receivables(reply.text) == expected


def test_every_section_is_there_and_every_value_names_its_source(client, web_data):
    html = client.get(f"/customers/{web_data.focus_id}").text
    page = scan(html)
    assert page.headings[0] == "杭州示例智能科技有限公司"
    assert set(HEADINGS) <= set(page.headings)
    # golden-record fields: system, external id and fetch time in the hub's timezone (14:07 UTC)
    assert "来源 kingdee CUST09001 · 2026-11-25 22:07" in page.one("field-credit_code").text
    assert "来源未记录" in page.one("field-size").text
    contacts = {e.text.split(" ")[0]: e.text for e in page.all("contact")}
    assert "总经理" in contacts["王建国"] and "决策者" in contacts["王建国"]
    assert "影响者" in contacts["李敏"]
    assert "来源 wecom wm-focus-0" in html
    # orders: ERP bill number and status, with the order's own provenance
    erp_bills = {e.text.split(" ")[0] for e in page.all("erp-bill")}
    assert {"XSDD09000001", "XSDD09000002"} <= erp_bills
    assert "来源 kingdee 100901 · " in html  # ERP order: external id is the ERP's FID
    assert any(e.text == "C 已审核" for e in page.all("erp-status"))
    # open bills and receipts with their bill numbers as the ERP calls them
    assert len(page.all("bill")) == 10 and "AR09000009" not in html  # the paid bill is not open
    assert "SKD09000001" in page.one("receipt").text
    # completeness: the profile's own figure; what is missing is named
    assert page.one("completeness").text == f"{_profile(web_data, web_data.focus_id).completeness:.0%}" == "100%"
    assert page.all("missing") == []
    bare = scan(client.get(f"/customers/{web_data.xss_id}").text)
    assert bare.one("completeness").text == "0%"
    assert bare.one("missing").text == "缺少：统一社会信用代码、地区、行业、负责人、电话、地址、信用额度、联系人"


def test_open_tasks_show_push_state_and_problems_and_link_to_the_task(client, web_data):
    page = scan(client.get(f"/customers/{web_data.focus_id}").text)
    tasks = page.all("task")
    assert [t.attrs["data-task-id"] for t in tasks] == [str(web_data.focus_task_id)]  # the done task is not listed
    text = tasks[0].text
    assert "催收逾期货款" in text and "已推送" in text and "收件人无效" in text
    assert "WeCom does not know 幽灵主管" in page.one("task-problems").text
    assert f"/tasks/{web_data.focus_task_id}" in page.links
    assert {e.attrs["data-state"] for e in page.all("push")} == {"sent", "invalid_recipient"}


def test_data_is_escaped_and_no_secret_is_rendered(client, web_data):
    html = client.get(f"/customers/{web_data.xss_id}").text
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
    focus = client.get(f"/customers/{web_data.focus_id}").text
    assert "<img src=x" not in focus and "&lt;img src=x onerror=alert(1)&gt;" in focus
    assert "<b>bold</b>" not in focus
    for path in (f"/customers/{web_data.focus_id}", f"/api/customers/{web_data.focus_id}", "/openapi.json",
                 f"/tasks/{web_data.focus_task_id}", "/customers?q=杭州", "/healthz"):
        body = client.get(path).text
        assert CALLBACK_TOKEN not in body
        assert "postgresql" not in body  # no database URL either


def test_pages_forbid_scripts_and_keep_customer_ids_out_of_referrers(client, web_data):
    headers = client.get(f"/customers/{web_data.focus_id}").headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("ref", ["999999999", "0", "abc", "-1", "99999999999999999999999", "١٢"])
def test_unknown_customer_is_a_404_page(client, ref):
    reply = client.get(f"/customers/{ref}")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("text/html")
    assert "未找到客户" in reply.text


def test_unknown_page_is_a_404_page_and_unknown_api_path_is_json(client):
    assert "未找到页面" in client.get("/no/such/page").text
    reply = client.get("/api/no-such")
    assert reply.status_code == 404 and reply.json() == {"detail": "Not Found"}


def test_money_formatting_is_what_finance_reads():
    assert money(Decimal("1234567.5")) == "1,234,567.50"
    assert money(None) == "—"


def _profile(web_data: WebData, customer_id: int):
    with web_data.db.engine.connect() as conn:
        return customer_profile(conn, customer_id, as_of=web_data.today)


def test_a_contracts_receivable_plan_shows_near_the_receivables_on_page_and_api(client, web_data):
    # given a signed contract whose plan the automation rules made (two instalments)
    with web_data.db.begin() as conn:
        customer = conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name) VALUES ('回款计划测试有限公司', '回款计划测试') RETURNING id"
        )).scalar_one()
        contract = conn.execute(sa.text(
            "INSERT INTO contract (customer_id, contract_number, title, currency, amount, status, signed_at, "
            "source_system, external_id) VALUES (:c, 'HT-PLAN-1', '年度框架合同', 'CNY', 1000, 'signed', now(), 'crm', "
            "'HT-PLAN-1') RETURNING id"), {"c": customer}).scalar_one()
        for no, due, amount in ((1, "2026-12-01", "300.00"), (2, "2027-01-30", "700.00")):
            conn.execute(sa.text(
                "INSERT INTO receivable_plan (contract_id, customer_id, instalment_no, due_date, amount, currency, "
                "rule) VALUES (:k, :c, :n, :d, :a, 'CNY', 'contract-signed')"),
                {"k": contract, "c": customer, "n": no, "d": dt.date.fromisoformat(due), "a": Decimal(amount)})
    # when the profile is opened
    page = client.get(f"/customers/{customer}")
    api = client.get(f"/api/customers/{customer}")
    # then the plan is listed in the finance section, in due-date order, and the API has it too
    assert page.status_code == 200 and api.status_code == 200
    finance = page.text[page.text.index('id="finance"'):page.text.index("最近回款")]
    assert "回款计划" in finance
    shown = [element.text for element in scan(page.text).all("plan")]
    assert [("第 1 期" in s, "2026-12-01" in s, "300.00" in s) for s in shown[:1]] == [(True, True, True)]
    assert "2027-01-30" in shown[1] and "700.00" in shown[1] and "计划中" in shown[1]
    plan = api.json()["receivable_plan"]
    assert [(p["instalment_no"], p["due_date"], p["amount"]) for p in plan] == [(1, "2026-12-01", "300.00"),
                                                                             (2, "2027-01-30", "700.00")]


def test_a_field_two_sources_disagree_on_shows_the_surviving_value_with_its_source_and_the_other(client, web_data):
    from canonical_model.records import CustomerRecord
    from hub.contracts import Page, StreamSpec
    from hub.engine import sync_stream
    from hub.identity import credit_code_check_char

    def stream(system: str) -> StreamSpec:
        return StreamSpec(
            name="customers", source_object="customer", target="customer", key_field="id", cursor_field=None,
            read_pages=lambda records, cursor: iter([Page(records, None)]),
            map_record=lambda raw: CustomerRecord(source_system=system, source_object="customer",
                                                  external_id=raw["id"], name=raw["name"], credit_code=raw["code"],
                                                  address=raw["address"]))

    # given Kingdee and YonBIP describing one company (one credit code) at two addresses
    body = "91320500MA1W9XY10"
    code = body + credit_code_check_char(body)
    sync_stream(web_data.db, "yonyou", stream("yonyou"),
                [{"id": "YYC-DIS", "name": "苏州分歧地址科技有限公司", "code": code, "address": "苏州市星湖街1号"}])
    sync_stream(web_data.db, "kingdee", stream("kingdee"),
                [{"id": "CUST-DIS", "name": "苏州分歧地址科技有限公司", "code": code, "address": "苏州市金鸡湖路2号"}])
    with web_data.db.engine.connect() as conn:
        customer_id = conn.execute(sa.text("SELECT id FROM customer WHERE credit_code = :c"), {"c": code}).scalar_one()

    # when its profile page is opened
    page = scan(client.get(f"/customers/{customer_id}").text)

    # then the address is Kingdee's (it ranks first by default), named as such, and YonBIP's is shown beside it
    address = page.one("field-address").text
    assert "苏州市金鸡湖路2号" in address and "来源 kingdee CUST-DIS" in address
    assert page.one("field-address-other").text == "yonyou YYC-DIS 另记为 苏州市星湖街1号"
    assert page.all("field-name-other") == []  # both say the same name: nothing to show
    # and the API says the same
    api = client.get(f"/api/customers/{customer_id}").json()
    assert api["disagreements"] == ["address"]
    assert {(v["system"], v["chosen"]) for v in api["field_values"]["address"]} == {("kingdee", True),
                                                                                    ("yonyou", False)}
