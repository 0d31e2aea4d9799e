"""Search (HTML and JSON) by Chinese name fragment, credit code, external id; the task page."""

from __future__ import annotations

import sqlalchemy as sa

from hub.demo.data import demo_credit_code
from tests.web.pagescan import scan


def _ids_by_name(web_data, fragment: str) -> set[int]:
    with web_data.db.engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT id FROM customer WHERE name LIKE :p"),
                                {"p": f"%{fragment}%"}).scalars())


def test_chinese_name_fragment_finds_every_matching_customer(client, web_data):
    # 股份有限公司: a fragment many customers share, yet under the page's cap of 50 also when other
    # tests of this worker have added customers to the shared web data (有限公司 alone reaches it)
    expected = _ids_by_name(web_data, "股份有限公司")
    assert 10 < len(expected) <= 50
    page = scan(client.get("/customers", params={"q": "股份有限公司"}).text)
    shown = {int(e.attrs["data-id"]) for e in page.all("hit")}
    assert shown == expected
    assert page.one("hit-count").text == f"找到 {len(expected)} 个客户"
    narrow = scan(client.get("/customers", params={"q": "示例智能"}).text)
    assert [int(e.attrs["data-id"]) for e in narrow.all("hit")] == [web_data.focus_id]
    assert f"/customers/{web_data.focus_id}" in narrow.links
    assert "杭州示例智能科技有限公司" in narrow.one("hit").text


def test_credit_code_and_external_ids_find_the_customer(client, web_data):
    for q, matched in ((demo_credit_code(9001), "credit_code"), (demo_credit_code(9001).lower(), "credit_code"),
                       ("CUST09001", "external_id"), ("crm-c9001", "external_id"),
                       (str(web_data.focus_id), "id")):
        hits = client.get("/api/customers", params={"q": q}).json()
        assert hits[0]["id"] == web_data.focus_id, q
        assert hits[0]["matched_by"] == matched
        assert hits[0]["url"] == f"/customers/{web_data.focus_id}"
    assert client.get("/api/customers", params={"q": "CUST09001"}).json()[0]["matched_value"] == "kingdee CUST09001"


def test_json_search_agrees_with_the_page(client, web_data):
    api = [h["id"] for h in client.get("/api/customers", params={"q": "建材"}).json()]
    page = [int(e.attrs["data-id"]) for e in scan(client.get("/customers", params={"q": "建材"}).text).all("hit")]
    assert api == page and set(api) == _ids_by_name(web_data, "建材")


def test_wildcards_and_odd_text_are_literal(client):
    assert client.get("/api/customers", params={"q": "%"}).json() == []
    assert client.get("/api/customers", params={"q": "_"}).json() == []
    assert client.get("/api/customers", params={"q": "a\x00b"}).status_code == 200
    nothing = client.get("/customers", params={"q": "<b>不存在的公司</b>"})
    assert nothing.status_code == 200 and "<b>不存在" not in nothing.text
    assert scan(nothing.text).one("no-hits")
    assert client.get("/api/customers").status_code == 422  # q is required


def test_task_page_links_to_its_customer_and_shows_delivery(client, web_data):
    reply = client.get(f"/tasks/{web_data.focus_task_id}")
    assert reply.status_code == 200
    page = scan(reply.text)
    assert page.one("task-title").text == "催收逾期货款"
    assert f"/customers/{web_data.focus_id}" in page.links
    assert page.one("task-customer").text == "杭州示例智能科技有限公司"
    assert {e.attrs["data-state"] for e in page.all("push")} == {"sent", "invalid_recipient"}
    assert "幽灵主管" in page.one("task-problems").text
    assert "推送状态" in page.headings


def test_unknown_task_is_a_404_page(client):
    for ref in ("987654321", "x", "0"):
        reply = client.get(f"/tasks/{ref}")
        assert reply.status_code == 404 and "未找到待办" in reply.text
