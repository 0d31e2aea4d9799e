"""Contract: the official-ish SDK (wechatpy 1.8.18, ``wechatpy.enterprise``) against our sandbox.

Only the base URL and ``fetch_access_token`` change: wechatpy concatenates paths to
``API_BASE_URL`` (an instance attribute works), but its ``fetch_access_token`` hard-codes
the qyapi host for gettoken (reference/messaging-apis.md §1.6, §3.1). Nothing else is
patched, so every other request — including POST bodies sent without a Content-Type —
is exactly what wechatpy sends to the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    demo_directory,
    demo_external_contacts,
    make_sandbox,
)

pytestmark = pytest.mark.contract

REPS = [u for u in demo_directory() if u.is_sales_rep and u.status == 1]


class SandboxWeChatClient(WeChatClient):
    """wechatpy's WeCom client pointed at another host; nothing else differs."""

    def __init__(self, base_url: str, corp_id: str, secret: str) -> None:
        super().__init__(corp_id, secret, timeout=5)
        self.API_BASE_URL = base_url.rstrip("/") + "/cgi-bin/"

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Any, str]]:
    with pytest.MonkeyPatch.context() as mp:
        # requests honours proxy variables; loopback must bypass any proxy.
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        app = make_sandbox()
        with serve_in_thread(app) as server:
            yield app, server.url


@pytest.fixture
def wechat(sandbox) -> SandboxWeChatClient:
    _, url = sandbox
    return SandboxWeChatClient(url, SANDBOX_CORP_ID, SANDBOX_SECRET)


def test_gets_a_token_and_reuses_it(sandbox, wechat):
    app, _ = sandbox
    before = app.state.wecom.gettoken_calls
    token = wechat.access_token
    assert token and wechat.access_token == token
    assert app.state.wecom.gettoken_calls == before + 1


def test_sends_text_textcard_markdown_and_template_card(sandbox, wechat):
    # given wechatpy's own message helpers (POST bodies without Content-Type)
    app, _ = sandbox
    rep = REPS[0]
    results = [
        wechat.message.send_text(SANDBOX_AGENT_ID, [rep.userid], "请今天回访苏州恒瑞"),
        wechat.message.send_text_card(SANDBOX_AGENT_ID, [rep.userid], "待办到期", '<div class="gray">今天 15:00</div>',
                                      "https://hub.example.com/customers/7"),
        wechat.message.send_markdown(SANDBOX_AGENT_ID, [rep.userid], "**跟进** 无锡华锐"),
        wechat.message.send(SANDBOX_AGENT_ID, [rep.userid], msg={"msgtype": "template_card", "template_card": {
            "card_type": "text_notice", "main_title": {"title": "待办到期"},
            "card_action": {"type": 1, "url": "https://hub.example.com/customers/7"}, "task_id": "crm-7-due"}}),
    ]
    # then each is accepted with a msgid, and the sandbox logged four deliveries
    assert all(r["errcode"] == 0 and r["msgid"] for r in results)
    assert [e["msgtype"] for e in app.state.wecom.message_log(rep.userid)] == [
        "text", "textcard", "markdown", "template_card"]


def test_directory_calls(wechat):
    departments = wechat.department.get()
    assert {d["name"] for d in departments} >= {"华东销售部", "华南销售部", "华北销售部"}
    users = wechat.user.list(1, fetch_child=True)
    assert {u["userid"] for u in users} == {u.userid for u in demo_directory()}
    rep = REPS[1]
    detail = wechat.user.get(rep.userid)
    assert (detail["name"], detail["mobile"], detail["main_department"]) == (rep.name, rep.mobile, rep.department_id)


def test_external_contact_calls(wechat):
    follow = wechat.external_contact.get_follow_user_list()["follow_user"]
    rep = next(u for u in REPS if u.userid in follow)
    ids = wechat.external_contact.list(rep.userid)["external_userid"]
    expected = {c.external_userid for c in demo_external_contacts() if any(f.userid == rep.userid for f in c.follows)}
    assert set(ids) == expected
    detail = wechat.external_contact.get(ids[0])
    assert detail["external_contact"]["external_userid"] == ids[0]
    assert rep.userid in {f["userid"] for f in detail["follow_user"]}


def test_no_valid_recipient_raises_with_invaliduser_in_the_response(wechat):
    # wechatpy raises on 81013; the refused ids are only in the response body (sdk-quirks.md)
    with pytest.raises(WeChatClientException) as caught:
        wechat.message.send_text(SANDBOX_AGENT_ID, ["Nobody.Here"], "hello")
    assert caught.value.errcode == 81013
    body = caught.value.response.json()
    assert body["invaliduser"] == "nobody.here"
    assert "user & party & tag all invalid" in body["errmsg"]


def test_expired_tokens_are_refetched_by_wechatpy(sandbox, wechat):
    # given a working client whose token the sandbox then expires (42001)
    app, _ = sandbox
    wechat.user.get(REPS[2].userid)
    issued = app.state.wecom.tokens_issued
    app.state.wecom.expire_all_tokens()
    # when wechatpy calls again, then its auto_retry fetches a new token and succeeds
    assert wechat.user.get(REPS[2].userid)["userid"] == REPS[2].userid
    assert app.state.wecom.tokens_issued == issued + 1
