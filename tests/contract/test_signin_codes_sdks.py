"""Contract: the platforms' SDKs exchange sign-in codes with our sandboxes as with the real
servers (reference/messaging-apis.md §6), unchanged but for the base URL.

- wechatpy 1.8 (``wechatpy.enterprise``): ``oauth.authorize_url`` builds the in-app OAuth
  link, and ``oauth.get_user_info(code)`` is the older exchange ``GET user/getuserinfo``
  (``UserId``, capitalised); a used, unknown or another app's code is errcode 40029.
  (wechatpy has no call for the newer ``auth/getuserinfo``; the hub's own client uses it,
  tests/web/test_signin.py.)
- dingtalk-sdk 1.3 (``dingtalk.AppKeyClient``): ``user.getuserinfo(code)`` is the older
  免登 exchange ``GET /user/getuserinfo``; its generic ``post`` calls
  ``topapi/v2/user/getuserinfo``. A reused or foreign code is errcode 40078 (a guess, §6).
  (alibabacloud-dingtalk covers only the v1.0 APIs, which have no 免登 exchange.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dingtalk import AppKeyClient
from dingtalk.core.exceptions import DingTalkClientException
from wechatpy.exceptions import WeChatClientException

from connectors.dingtalk.sandbox import SANDBOX as DINGTALK_SANDBOX
from connectors.dingtalk.sandbox.credentials import (
    SANDBOX_APP_KEY,
    SANDBOX_APP_SECRET,
    SANDBOX_OTHER_APP_KEY,
    SANDBOX_OTHER_APP_SECRET,
)
from connectors.dingtalk.sandbox.credentials import SANDBOX_CORP_ID as DING_CORP_ID
from connectors.dingtalk.sandbox.seed import dingtalk_directory
from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import (
    SANDBOX_CORP_ID,
    SANDBOX_OTHER_AGENT_ID,
    SANDBOX_OTHER_SECRET,
    SANDBOX_SECRET,
    demo_directory,
    make_sandbox,
)
from tests.contract.test_wecom_wechatpy import SandboxWeChatClient

pytestmark = pytest.mark.contract
MEMBER = demo_directory()[0].userid


@pytest.fixture(scope="module")
def wecom() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with serve_in_thread(make_sandbox()) as server:
            yield server.url


def wecom_code(url: str, userid: str = MEMBER, agentid: int | None = None) -> str:
    body: dict[str, Any] = {"userid": userid, **({"agentid": agentid} if agentid else {})}
    return str(httpx.post(url + "/__sandbox__/oauth/code", json=body).json()["code"])


def test_wechatpy_exchanges_an_oauth_code_once(wecom):
    client = SandboxWeChatClient(wecom, SANDBOX_CORP_ID, SANDBOX_SECRET)
    code = wecom_code(wecom)
    assert client.oauth.get_user_info(code)["UserId"] == MEMBER
    with pytest.raises(WeChatClientException) as reused:
        client.oauth.get_user_info(code)
    assert reused.value.errcode == 40029
    with pytest.raises(WeChatClientException) as unknown:
        client.oauth.get_user_info("no-such-code")
    assert unknown.value.errcode == 40029


def test_wechatpy_cannot_redeem_another_apps_code(wecom):
    other_app = SandboxWeChatClient(wecom, SANDBOX_CORP_ID, SANDBOX_OTHER_SECRET)
    this_app = SandboxWeChatClient(wecom, SANDBOX_CORP_ID, SANDBOX_SECRET)
    code = wecom_code(wecom)
    with pytest.raises(WeChatClientException) as foreign:
        other_app.oauth.get_user_info(code)
    assert foreign.value.errcode == 40029
    assert this_app.oauth.get_user_info(code)["UserId"] == MEMBER  # the refusal did not burn it
    theirs = wecom_code(wecom, agentid=SANDBOX_OTHER_AGENT_ID)
    assert other_app.oauth.get_user_info(theirs)["UserId"] == MEMBER


def test_wechatpys_authorize_url_is_followed_by_the_sandboxs_oauth_page(wecom):
    client = SandboxWeChatClient(wecom, SANDBOX_CORP_ID, SANDBOX_SECRET)
    client.oauth.OAUTH_BASE_URL = wecom + "/connect/oauth2/authorize"  # the host is the only change
    httpx.post(wecom + "/__sandbox__/oauth/in-app-user", json={"userid": MEMBER})
    link = client.oauth.authorize_url("https://hub.example.com/auth/wecom", state="abc123")
    hop = httpx.get(link, follow_redirects=False)
    assert hop.status_code == 302
    target = urlsplit(hop.headers["location"])
    assert (target.netloc, target.path) == ("hub.example.com", "/auth/wecom")
    query = parse_qs(target.query)
    assert query["state"] == ["abc123"]
    assert client.oauth.get_user_info(query["code"][0])["UserId"] == MEMBER


@pytest.fixture(scope="module")
def dingtalk() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with serve_in_thread(DINGTALK_SANDBOX.create_app()) as server:
            yield server.url


def sdk(url: str, app_key: str = SANDBOX_APP_KEY, secret: str = SANDBOX_APP_SECRET) -> AppKeyClient:
    client = AppKeyClient(DING_CORP_ID, app_key, secret)
    client.API_BASE_URL = url + "/"
    return client


def ding_code(url: str, userid: str, app_key: str | None = None) -> str:
    body = {"userid": userid, **({"appKey": app_key} if app_key else {})}
    return str(httpx.post(url + "/__sandbox__/authcode", json=body).json()["code"])


def test_dingtalk_sdk_exchanges_a_mianden_code_once_both_ways(dingtalk):
    member = next(m for m in dingtalk_directory() if m.active)
    client = sdk(dingtalk)
    legacy = client.user.getuserinfo(ding_code(dingtalk, member.userid))
    assert legacy["userid"] == member.userid
    code = ding_code(dingtalk, member.userid)
    result = client.post("/topapi/v2/user/getuserinfo", {"code": code})
    assert (result["result"]["userid"], result["result"]["unionid"]) == (member.userid, member.unionid)
    with pytest.raises(DingTalkClientException) as reused:
        client.post("/topapi/v2/user/getuserinfo", {"code": code})
    assert reused.value.errcode == 40078


def test_dingtalk_sdk_cannot_redeem_another_apps_code(dingtalk):
    member = next(m for m in dingtalk_directory() if m.active)
    code = ding_code(dingtalk, member.userid)
    with pytest.raises(DingTalkClientException) as foreign:
        sdk(dingtalk, SANDBOX_OTHER_APP_KEY, SANDBOX_OTHER_APP_SECRET).user.getuserinfo(code)
    assert foreign.value.errcode == 40078
    assert sdk(dingtalk).user.getuserinfo(code)["userid"] == member.userid
