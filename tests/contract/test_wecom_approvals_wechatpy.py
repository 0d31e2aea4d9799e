"""Contract: wechatpy 1.8 (``wechatpy.enterprise``) OA approvals against our WeCom sandbox, unchanged.

``OA.get_template_detail``, ``OA.apply_event`` and ``OA.get_approval_detail`` as wechatpy sends
them (no Content-Type), and ``client.post("oa/getapprovalinfo", …)`` with the documented
``new_cursor``/``filters`` — wechatpy's own ``get_approval_info`` sends ``cursor``/``filter``
(reference/oa-approvals.md §2.7), which the sandbox, like WeCom, does not read as filters.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from wechatpy.exceptions import WeChatClientException

from connectors.wecom.sandbox import demo_directory
from connectors.wecom.sandbox.approvals import ORDER_TEMPLATE
from tests.contract import test_wecom_wechatpy as base
from tests.contract.test_wecom_wechatpy import SandboxWeChatClient

pytestmark = pytest.mark.contract
sandbox, wechat = base.sandbox, base.wechat  # the same fixtures: a WeCom sandbox and wechatpy pointed at it

SELLER, OTHER = [u for u in demo_directory() if u.is_sales_rep and u.status == 1 and u.manager_userid][:2]
TEMPLATE = ORDER_TEMPLATE.template_id
KEY_ID, NUMBER_ID, CUSTOMER_ID, AMOUNT_ID = (c.id for c in ORDER_TEMPLATE.controls)


def contents(key: str, amount: str = "128000.00") -> dict[str, Any]:
    return {"contents": [
        {"control": "Text", "id": KEY_ID, "value": {"text": key}},
        {"control": "Text", "id": CUSTOMER_ID, "value": {"text": "深圳华南精密制造有限公司"}},
        {"control": "Money", "id": AMOUNT_ID, "value": {"new_money": amount}},
    ]}


def apply(wechat: SandboxWeChatClient, key: str, creator: str = SELLER.userid) -> str:
    reply = wechat.OA.apply_event(creator, TEMPLATE, 1, None, contents(key),
                                  [{"summary_info": [{"text": f"CRM订单 {key}", "lang": "zh_CN"}]}])
    return str(reply["sp_no"])


def test_template_detail_names_the_controls_and_their_required_flags(wechat):
    detail = wechat.OA.get_template_detail(TEMPLATE)
    controls = {c["property"]["title"][0]["text"]: c["property"] for c in detail["template_content"]["controls"]}
    assert controls["CRM单号"]["id"] == KEY_ID and controls["CRM单号"]["require"] == 1
    assert controls["订单编号"]["require"] == 0 and controls["金额"]["control"] == "Money"


def test_apply_event_makes_a_dated_sp_no_and_the_detail_reads_back(wechat):
    # when wechatpy submits an application twice with the same content (WeCom dedupes nothing)
    first, second = apply(wechat, "crm-order-7-r1"), apply(wechat, "crm-order-7-r1")
    # then two sp_no of today's date and a 4-digit daily sequence
    today = time.strftime("%Y%m%d", time.gmtime(time.time() + 8 * 3600))
    assert first != second and first[:8] == second[:8] == today and len(first) == 12 and first.isdigit()
    info = wechat.OA.get_approval_detail(first)["info"]
    assert info["sp_status"] == 1 and info["template_id"] == TEMPLATE and info["applyer"]["userid"] == SELLER.userid
    key = next(c for c in info["apply_data"]["contents"] if c["id"] == KEY_ID)
    assert key["value"]["text"] == "crm-order-7-r1" and key["title"][0]["text"] == "CRM单号"
    assert info["sp_record"][0]["details"][0]["approver"]["userid"] == SELLER.manager_userid


def test_bad_applications_are_301025(wechat):
    for data in ({"contents": contents("k")["contents"][:1]},  # required controls missing
                 {"contents": [{"control": "Money", "id": KEY_ID, "value": {"new_money": "1"}}]},  # wrong type
                 {"contents": [*contents("k")["contents"][:2], {"control": "Money", "id": AMOUNT_ID,
                                                                 "value": {"new_money": "十万"}}]}):
        with pytest.raises(WeChatClientException) as refused:
            wechat.OA.apply_event(SELLER.userid, TEMPLATE, 1, None, data, [])
        assert refused.value.errcode == 301025
    with pytest.raises(WeChatClientException) as refused:
        wechat.OA.apply_event("nobody-here", TEMPLATE, 1, None, contents("k"), [])
    assert refused.value.errcode == 301025


def test_getapprovalinfo_filters_pages_and_refuses_bad_windows(wechat):
    since = int(time.time()) - 5
    mine = [apply(wechat, f"crm-order-list-{n}") for n in range(3)]
    theirs = apply(wechat, "crm-order-list-x", creator=OTHER.userid)
    now = int(time.time()) + 5
    filters = [{"key": "template_id", "value": TEMPLATE}, {"key": "creator", "value": SELLER.userid}]
    # the documented body, in pages of 2: new_next_cursor until the last page, which has none
    seen: list[str] = []
    cursor = ""
    while True:
        page = wechat.post("oa/getapprovalinfo", data={"starttime": str(since), "endtime": str(now),
                                                       "new_cursor": cursor, "size": 2, "filters": filters})
        seen += page["sp_no_list"]
        cursor = page.get("new_next_cursor") or ""
        if not cursor:
            break
    assert set(mine) <= set(seen) and theirs not in seen
    # wechatpy's own method sends "filter" and "cursor": the filters are not applied
    unfiltered = wechat.OA.get_approval_info(since, now, 0, 100, filters)
    assert theirs in unfiltered["sp_no_list"]
    # milliseconds, or a window over 31 days: 301025
    for start, end in ((since * 1000, now * 1000), (now - 32 * 86_400, now)):
        with pytest.raises(WeChatClientException) as refused:
            wechat.post("oa/getapprovalinfo", data={"starttime": str(start), "endtime": str(end), "new_cursor": "",
                                                    "size": 100})
        assert refused.value.errcode == 301025


def test_the_state_machine_agree_refuse_revoke_delete(sandbox, wechat):
    _, url = sandbox
    act = f"{url}/__sandbox__/approvals/{{}}/act"
    agreed, refused, revoked, deleted = (apply(wechat, f"crm-order-sm-{n}") for n in range(4))
    assert httpx.post(act.format(refused), json={"action": "refuse", "remark": "折扣过大"}).status_code == 200
    info = wechat.OA.get_approval_detail(refused)["info"]
    assert info["sp_status"] == 3 and info["sp_record"][0]["details"][0]["speech"] == "折扣过大"
    assert httpx.post(act.format(agreed), json={"action": "agree"}).status_code == 200
    assert httpx.post(act.format(agreed), json={"action": "refuse"}).status_code == 409
    assert httpx.post(act.format(agreed), json={"action": "revoke"}).status_code == 200
    assert wechat.OA.get_approval_detail(agreed)["info"]["sp_status"] == 6
    assert httpx.post(act.format(revoked), json={"action": "revoke"}).status_code == 200
    assert httpx.post(act.format(deleted), json={"action": "delete"}).status_code == 200
    assert [wechat.OA.get_approval_detail(n)["info"]["sp_status"] for n in (revoked, deleted)] == [4, 7]
