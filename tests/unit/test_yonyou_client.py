"""The YonBIP client against httpx.MockTransport: discovery, token, codes, refresh once."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from connectors.yonyou.client import YonyouBusinessError, YonyouClient, sign
from hub.calls import ExternalCall
from hub.errors import AuthExpiredError, RateLimitedError, RetryableError

SECRET = "s3cret-app-secret"


class Tenant:
    """A scripted tenant: answers per path, counts tokens."""

    def __init__(self, business: list[httpx.Response] | None = None) -> None:
        self.business = business or []
        self.tokens = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("getGatewayAddress"):
            return httpx.Response(200, json={"code": "00000", "data": {
                "gatewayUrl": "https://dc.example/iuap-api-gateway", "tokenUrl": "https://dc.example/iuap-api-auth"}})
        if path.endswith("getAccessToken"):
            params = dict(request.url.params)
            assert params["signature"] == sign(params, SECRET)
            self.tokens += 1
            return httpx.Response(200, json={"code": "00000", "data": {"access_token": f"t{self.tokens}",
                                                                       "expire": 7200}})
        return self.business.pop(0)


def client(tenant: Tenant, calls: list[ExternalCall] | None = None) -> YonyouClient:
    return YonyouClient(base_url="https://apigateway.example", tenant_id="T1", app_key="K", app_secret=SecretStr(SECRET),
                        transport=httpx.MockTransport(tenant), observer=(calls.append if calls is not None else
                                                                         lambda call: None))


def test_given_a_tenant_when_calling_then_the_gateway_is_discovered_once_and_the_token_rides_the_query():
    tenant = Tenant([httpx.Response(200, json={"code": "200", "data": [{"code": "C1"}]}),
                     httpx.Response(200, json={"code": 200, "data": [{"code": "C2"}]})])
    api = client(tenant)
    assert [r["code"] for r in api.merchant_page(1, 10)] == ["C1"]
    assert [r["code"] for r in api.merchant_page(2, 10)] == ["C2"]  # numeric 200 is success too
    business = [r for r in tenant.requests if "/yonbip/" in r.url.path]
    assert all(r.url.host == "dc.example" and r.url.params["access_token"] == "t1" for r in business)
    assert sum(r.url.path.endswith("getGatewayAddress") for r in tenant.requests) == 1
    assert json.loads(business[0].content) == {"pageIndex": 1, "pageSize": 10}


@pytest.mark.parametrize("expired", [
    httpx.Response(200, json={"code": "310036", "message": "非法token"}),
    httpx.Response(200, json={"code": "310001", "message": "token不能为空"}),
    httpx.Response(200, text="非法token"),
])
def test_given_an_expired_token_when_calling_then_one_refresh_and_one_resend(expired):
    tenant = Tenant([expired, httpx.Response(200, json={"code": "200", "data": []})])
    calls: list[ExternalCall] = []
    assert client(tenant, calls).merchant_page(1, 10) == []
    assert tenant.tokens == 2
    assert [c.outcome for c in calls if c.operation.endswith("newlist")] == ["error", "ok"]


def test_given_a_token_refused_twice_then_auth_expired_is_raised_not_a_loop():
    tenant = Tenant([httpx.Response(200, json={"code": "310036", "message": "非法token"})] * 2)
    with pytest.raises(AuthExpiredError, match="after one refresh"):
        client(tenant).merchant_page(1, 10)
    assert tenant.tokens == 2


@pytest.mark.parametrize(("reply", "error", "code"), [
    (httpx.Response(200, json={"code": "310046", "message": "API限流"}), RateLimitedError, "code 310046"),
    (httpx.Response(200, json={"code": "310039", "message": "应用限流"}), RateLimitedError, "code 310039"),
    (httpx.Response(200, json={"code": "202", "message": "处理中"}), RateLimitedError, "code 202"),
    (httpx.Response(200, json={"code": "310504", "message": "超时"}), RetryableError, "code 310504"),
    (httpx.Response(502, text="<html>bad gateway</html>"), RetryableError, "HTTP 502"),
    (httpx.Response(404, json={"code": "310404", "message": "API不存在"}), YonyouBusinessError, "code 310404"),
    (httpx.Response(200, json={"code": "999", "message": "客户不存在"}), YonyouBusinessError, "code 999"),
    (httpx.Response(200, json={"code": 0, "message": "客户名称不能为空!"}), YonyouBusinessError, "code 0"),
])
def test_codes_become_the_hubs_error_classes_with_the_vendor_message(reply, error, code):
    with pytest.raises(error) as raised:
        client(Tenant([reply])).merchant_page(1, 10)
    assert raised.value.code == code and raised.value.system == "yonyou"
    assert "access_token" not in str(raised.value) and SECRET not in str(raised.value)


def test_a_duplicate_code_on_an_idempotent_save_is_the_earlier_document():
    tenant = Tenant([httpx.Response(200, json={"code": "10004", "message": "重复", "data": {"id": "42"}})])
    saved = client(tenant).order_save({"code": "CRM-1", "resubmitCheckKey": "k"})
    assert (saved.id, saved.code, saved.duplicate) == ("42", "CRM-1", True)


def test_the_signature_is_base64_hmac_sha256_of_the_sorted_parameters():
    # known answer computed independently: HMAC-SHA256(key="secret", "appKeyabctimestamp1700000000000")
    import base64
    import hashlib
    import hmac
    expected = base64.b64encode(hmac.new(b"secret", b"appKeyabctimestamp1700000000000", hashlib.sha256).digest())
    assert sign({"timestamp": "1700000000000", "appKey": "abc"}, "secret") == expected.decode()


def test_given_read_slots_then_lists_and_details_go_wide_but_not_when_paced_to_the_quota():
    from connectors.yonyou.client import ORDER_DETAIL, ORDER_LIST, RECEIVABLE_LIST
    from connectors.yonyou.streams import pages_ahead

    def made(**options: object) -> YonyouClient:
        return YonyouClient(base_url="https://apigateway.example", tenant_id="T1", app_key="K",
                            app_secret=SecretStr(SECRET), **options)

    purchased = made(max_concurrent_reads=3, order_calls_per_minute=0)
    assert purchased.read_concurrency == 3
    assert pages_ahead(purchased, ORDER_LIST, beside=1) == pages_ahead(purchased, ORDER_DETAIL, beside=1) == 2
    assert pages_ahead(purchased, RECEIVABLE_LIST) == 3
    # the free quota paces order calls: one at a time (a call waiting on its pacer holds a read slot)
    free = made(max_concurrent_reads=3, order_calls_per_minute=60, quota_window_s=60.0)
    assert pages_ahead(free, ORDER_LIST, beside=1) == pages_ahead(free, ORDER_DETAIL, beside=1) == 1
    assert pages_ahead(free, RECEIVABLE_LIST) == 3
    # a client built by hand, without read slots, keeps to one of each
    assert made(order_calls_per_minute=0).read_concurrency is None
    assert pages_ahead(made(order_calls_per_minute=0), ORDER_LIST, beside=1) == 1


def test_a_list_page_out_of_pubts_order_stops_the_keyset_read_instead_of_skipping_rows():
    from connectors.yonyou.streams import read_receivables
    from hub.errors import PermanentError

    def page(*stamps: str) -> httpx.Response:
        rows = [{"id": str(i), "pubts": stamp} for i, stamp in enumerate(stamps)]
        return httpx.Response(200, json={"code": "200", "data": {"recordList": rows, "pageIndex": 1}})

    tenant = Tenant([page("2026-01-01 00:00:01", "2026-01-01 00:00:02"), page("2026-01-01 00:00:03", "2026-01-01 00:00:02")])
    reader = YonyouClient(base_url="https://apigateway.example", tenant_id="T1", app_key="K",
                          app_secret=SecretStr(SECRET), transport=httpx.MockTransport(tenant), read_page_size=2)
    pages = read_receivables(reader, {})
    assert [row["id"] for row in next(pages)] == ["0", "1"]
    # the second request asks from the first page's largest pubts, and its reply goes backwards
    with pytest.raises(PermanentError, match="not in pubts order"):
        next(pages)
    asked = json.loads(tenant.requests[-1].content)
    assert asked["simpleVOs"] == [{"field": "pubts", "op": "egt", "value1": "2026-01-01 00:00:02"}]
    assert asked["pageIndex"] == 1
