"""WeCom's callbacks through the web app over real HTTP: accepted, forged, replayed, stale.

WeCom's side is played by the sandbox's :class:`CallbackDriver` (and, for the replay,
by :mod:`connectors.kit.crypto` directly, to resend the very same bytes).
"""

from __future__ import annotations

import base64
import os
import secrets
import time

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.kit.crypto import wecom_crypto
from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
    SANDBOX_ENCODING_AES_KEY,
    CallbackDriver,
)
from connectors.wecom.sandbox.callbacks import event_xml
from hub.access import Role
from hub.web import create_web_app
from tests.conftest import rows, scalar
from tests.support.access import bearer, issue_token
from tests.web.conftest import audit
from tests.web.pagescan import scan

pytestmark = pytest.mark.e2e  # starts a server (and a browser)

PATH = "/callbacks/wecom"


@pytest.fixture
def people(db) -> dict[str, int]:
    """A salesperson (WeCom id zhangsan), a customer, and its contact on WeCom (wmLOST01)."""
    with db.begin() as conn:
        user = conn.execute(sa.text(
            "INSERT INTO internal_user (name, wecom_userid, source_system, external_id) "
            "VALUES ('张三', 'zhangsan', 'crm', 'crm-zhangsan') RETURNING id")).scalar_one()
        customer = conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name, owner_id) VALUES ('苏州回调测试有限公司', '苏州回调测试', :u) "
            "RETURNING id"), {"u": user}).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO contact (customer_id, name, title, source_system, external_id, wecom_external_userid) "
            "VALUES (:c, '赵采购', '采购总监', 'wecom', 'wmLOST01', 'wmLOST01')"), {"c": customer})
    return {"user": user, "customer": customer}


def test_url_verification_answers_the_plaintext(served):
    with CallbackDriver(served + PATH) as wecom:
        assert wecom.verify_url()


def test_customer_deleting_the_salesperson_is_audited_and_on_the_timeline(db, people, served):
    with CallbackDriver(served + PATH, retries=0) as wecom:
        delivery = wecom.external_contact_event("del_follow_user", "zhangsan", "wmLOST01")
    assert delivery.statuses == [200]
    [row] = audit(db, operation="callback:change_external_contact/del_follow_user")
    assert (row.outcome, row.external_id, row.actor) == ("ok", "wmLOST01", "web:wecom-callback")
    assert row.detail["UserID"] == "zhangsan" and row.detail["interaction_customer_ids"] == [people["customer"]]
    [interaction] = rows(db, "SELECT * FROM interaction WHERE customer_id = :c", c=people["customer"])
    assert (interaction.kind, interaction.source_system, interaction.user_id) == ("chat", "wecom", people["user"])
    assert "赵采购" in interaction.summary and "张三" in interaction.summary
    # and the salesperson sees it on the profile page of their customer
    with httpx.Client(base_url=served, headers=bearer(issue_token(db, Role.SALES, user_id=people["user"]))) as http:
        page = scan(http.get(f"/customers/{people['customer']}").text)
    assert any("赵采购 删除了 张三" in e.text for e in page.all("interaction"))


def test_salesperson_deleting_a_contact_is_recorded_and_unknown_contacts_only_audited(db, people, served):
    with CallbackDriver(served + PATH, retries=0) as wecom:
        assert wecom.external_contact_event("del_external_contact", "zhangsan", "wmLOST01").accepted
        assert wecom.external_contact_event("del_external_contact", "zhangsan", "wmNOBODY").accepted
        assert wecom.external_contact_event("add_external_contact", "zhangsan", "wmNEW", state="expo",
                                            welcome_code="WELCOME-SECRET").accepted
    assert scalar(db, "SELECT count(*) FROM interaction") == 1
    assert "张三 删除了客户联系人 赵采购" in str(scalar(db, "SELECT summary FROM interaction"))
    assert len(audit(db, operation="callback:change_external_contact/del_external_contact", outcome="ok")) == 2
    [added] = audit(db, operation="callback:change_external_contact/add_external_contact")
    assert added.detail["State"] == "expo" and "WelcomeCode" not in added.detail  # a live credential for 20 s


def test_forged_signature_is_refused_and_audited(db, people, served):
    with CallbackDriver(served + PATH, token="not-the-token", retries=0) as forger:
        delivery = forger.external_contact_event("del_follow_user", "zhangsan", "wmLOST01")
    assert delivery.statuses == [403]
    [row] = audit(db, outcome="rejected")
    assert (row.operation, row.error, row.detail["reason"]) == ("callback", "bad_signature", "bad_signature")
    assert row.detail["method"] == "POST"
    assert scalar(db, "SELECT count(*) FROM interaction") == 0
    assert audit(db, outcome="ok") == []


def test_replayed_request_is_refused_and_recorded_once(db, people, served):
    crypto = wecom_crypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, SANDBOX_CORP_ID)
    plaintext = event_xml({"ToUserName": SANDBOX_CORP_ID, "FromUserName": "sys", "CreateTime": int(time.time()),
                           "MsgType": "event", "Event": "change_external_contact", "ChangeType": "del_follow_user",
                           "UserID": "zhangsan", "ExternalUserID": "wmLOST01", "AgentID": SANDBOX_AGENT_ID})
    sealed = crypto.seal(plaintext, nonce=secrets.token_hex(5), timestamp=crypto.now_timestamp())
    body = (f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{sealed.encrypt}]]></Encrypt></xml>")
    params = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
    with httpx.Client(base_url=served) as http:
        first = http.post(PATH, params=params, content=body)
        again = http.post(PATH, params=params, content=body)
    assert (first.status_code, again.status_code) == (200, 403)
    assert again.text == "replayed"
    assert [r.error for r in audit(db, outcome="rejected")] == ["replayed"]
    assert len(audit(db, outcome="ok")) == 1
    assert scalar(db, "SELECT count(*) FROM interaction") == 1


def test_stale_timestamp_is_refused(db, people, served):
    with CallbackDriver(served + PATH, retries=0, clock=lambda: time.time() - 3600) as late:
        assert late.external_contact_event("del_follow_user", "zhangsan", "wmLOST01").statuses == [403]
    assert [r.error for r in audit(db, outcome="rejected")] == ["stale_timestamp"]


def test_real_tenant_uses_its_own_callback_settings_and_none_means_no_receiver(db, settings):
    aes_key = base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")
    tenant = settings.with_connector(
        "wecom", base_url="https://qyapi.weixin.qq.com", corp_id="ww0123456789abcdef",
        callback_token=SecretStr("tenant-token"), callback_aes_key=SecretStr(aes_key))
    with serve_in_thread(create_web_app(db, tenant)) as server:
        url = server.url + PATH
        with CallbackDriver(url, token="tenant-token", encoding_aes_key=aes_key, corp_id="ww0123456789abcdef",
                            retries=0) as wecom:
            assert wecom.verify_url()
            assert wecom.external_contact_event("add_external_contact", "zhangsan", "wmX").statuses == [200]
        with CallbackDriver(url, retries=0) as sandbox:  # the sandbox's credentials are not this tenant's
            assert sandbox.external_contact_event("add_external_contact", "zhangsan", "wmX").statuses == [403]
    unconfigured = settings.with_connector("wecom", base_url="https://qyapi.weixin.qq.com", callback_token=None,
                                           callback_aes_key=None)
    with serve_in_thread(create_web_app(db, unconfigured)) as server, httpx.Client(base_url=server.url) as http:
        assert http.post(PATH, content=b"<xml/>").status_code == 404


def test_wecom_retry_of_a_handled_event_is_recorded_once(db, people, served):
    # WeCom may resend an event it thinks was not acked, with a new nonce and signature:
    # not a replay, so it is accepted and audited, but the timeline gets it once.
    sent_at = time.time()
    with CallbackDriver(served + PATH, retries=0, clock=lambda: sent_at) as wecom:
        first = wecom.external_contact_event("del_follow_user", "zhangsan", "wmLOST01")
        again = wecom.external_contact_event("del_follow_user", "zhangsan", "wmLOST01")
    assert first.statuses == again.statuses == [200]
    assert len(audit(db, operation="callback:change_external_contact/del_follow_user", outcome="ok")) == 2
    assert scalar(db, "SELECT count(*) FROM interaction") == 1
