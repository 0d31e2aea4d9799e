"""Contract: the vendor's own Python package (yonyouopenapisdk1 0.0.2) against our YonBIP sandbox.

The package is fragile to install (its requirements name standard-library modules; see
pyproject's uv overrides and sdk-quirks.md) but it works unchanged but for the host: its
token call (``token_opt.opt_self_token``: the old ``/iuap-api-auth/open-auth/selfAppAuth/
getAccessToken`` path, ms timestamp, base64 HMAC-SHA256 signature) and a business call with
the token as an ``access_token`` *header* (``request_opt``), which the sandbox accepts as the
real gateway does [UNC]. Our client does the same conversation with the token in the query.
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.yonyou.client import CUSTOMER_LIST, YonyouClient
from connectors.yonyou.sandbox import SANDBOX_CREDENTIALS, create_app

pytestmark = pytest.mark.contract
token_opt = pytest.importorskip("yonbip_open_api_sdk.token_opt")
request_opt = pytest.importorskip("yonbip_open_api_sdk.request_opt")


@pytest.fixture(scope="module")
def sandbox():
    server = serve_in_thread(create_app(scale=0.02))
    yield server
    server.stop()


def test_the_vendor_package_gets_a_token_and_lists_customers(sandbox):
    creds = SANDBOX_CREDENTIALS
    token = token_opt.opt_self_token(creds.app_key, creds.app_secret, sandbox.url)
    assert token["expire"] == 7200 and len(token["access_token"]) > 40

    response = request_opt.opt_self_app_request_with_access_token(
        "post", f"{sandbox.url}/iuap-api-gateway/yonbip/{CUSTOMER_LIST}", {},
        json.dumps({"pageIndex": 1, "pageSize": 10}), None, token["access_token"])
    reply = response.json()
    assert reply["code"] == "200" and len(reply["data"]) == 10
    assert reply["data"][0]["code"] == "YYC00001" and reply["data"][0]["creditCode"]


def test_the_vendor_package_is_refused_with_a_wrong_secret_and_a_stale_token(sandbox):
    with pytest.raises(Exception, match="10019"):
        token_opt.opt_self_token(SANDBOX_CREDENTIALS.app_key, "not-the-secret", sandbox.url)
    response = request_opt.opt_self_app_request_with_access_token(
        "post", f"{sandbox.url}/iuap-api-gateway/yonbip/{CUSTOMER_LIST}", {}, "{}", None, "expired-token")
    assert response.json()["code"] == "310036"


def test_our_client_discovers_the_gateway_and_reads_what_the_package_reads(sandbox):
    creds = SANDBOX_CREDENTIALS
    client = YonyouClient(base_url=sandbox.url, tenant_id=creds.tenant_id, app_key=creds.app_key,
                          app_secret=SecretStr(creds.app_secret))
    token = token_opt.opt_self_token(creds.app_key, creds.app_secret, sandbox.url)
    theirs = request_opt.opt_self_app_request_with_access_token(
        "post", f"{sandbox.url}/iuap-api-gateway/yonbip/{CUSTOMER_LIST}", {},
        json.dumps({"pageIndex": 1, "pageSize": 10}), None, token["access_token"]).json()["data"]
    assert client.addresses().gateway_url == f"{sandbox.url}/iuap-api-gateway"
    assert [r["code"] for r in client.merchant_page(1, 10)] == [r["code"] for r in theirs]
    client.close()
