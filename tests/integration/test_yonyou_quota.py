"""Yonyou's per-minute quota on the sales order APIs (erp-apis.md §2.3: list, detail and
singleSave, 60 calls a minute each from 2026-03-31): the sandbox enforces it as the
platform does (310046 in an HTTP 200 envelope), and the hub's client paces itself under it.

Real Postgres and the sandbox over real HTTP; the sandbox's quota clock is a fake one where
a test needs a minute to pass, and a test that syncs shortens the minute to two seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr, ValidationError

import connectors.yonyou.client as yonyou_client
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import RunningServer
from connectors.yonyou.client import CUSTOMER_LIST, ORDER_LIST, YonyouClient
from connectors.yonyou.sandbox import SANDBOX_CREDENTIALS, create_app
from connectors.yonyou.settings import YonyouSettings
from hub.errors import RateLimitedError
from hub.runtime import HubRuntime
from tests.conftest import scalar


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tenant(clock: FakeClock) -> Iterator[RunningServer]:
    """A tenant on the free quota (60 calls a minute per order API), its minute on ``clock``."""
    with serve_in_thread(create_app(scale=0.01, clock=clock)) as server:
        yield server


def unpaced_client(server: RunningServer) -> YonyouClient:
    """A client that does not pace itself (it believes the tenant bought more)."""
    creds = SANDBOX_CREDENTIALS
    return YonyouClient(base_url=server.url, tenant_id=creds.tenant_id, app_key=creds.app_key,
                        app_secret=SecretStr(creds.app_secret), order_calls_per_minute=0)


def test_the_61st_order_list_call_within_a_minute_is_refused_with_310046_and_passes_a_minute_later(tenant, clock):
    client = unpaced_client(tenant)
    try:
        # given 60 calls of the order list within one minute, all answered
        for _ in range(60):
            assert client.list_page(ORDER_LIST, 1, 1).records
        # when the 61st comes in the same minute
        with pytest.raises(RateLimitedError) as refused:
            client.list_page(ORDER_LIST, 1, 1)
        # then it is the platform's API rate limit (retried by the caller, not a failure)
        assert refused.value.code == "code 310046"
        # and on the wire: HTTP 200 with the vendor envelope, as every other platform error
        token, _ = client.auth.current()
        raw = httpx.post(f"{tenant.url}/iuap-api-gateway/yonbip/{ORDER_LIST}", params={"access_token": token},
                         json={"pageIndex": 1, "pageSize": 1})
        assert raw.status_code == 200 and raw.json()["code"] == "310046"
        # and the quota is per API: the order detail and the (unquota'd) customer list still answer
        order_id = next(iter(tenant.app.state.yonyou.data.orders))
        assert client.order_detail(order_id)["id"] == order_id
        assert client.merchant_page(1, 5)
        # when a minute has passed since the first 60
        clock.now += 60.0
        # then the list answers again
        assert client.list_page(ORDER_LIST, 1, 1).records
        assert tenant.app.state.yonyou.quota.refused == 2
    finally:
        client.close()


def test_a_tenant_with_purchased_quota_is_not_refused(clock):
    # given a sandbox tenant whose quota is off (None), as one that bought more
    with serve_in_thread(create_app(scale=0.01, clock=clock, order_calls_per_minute=None)) as server:
        client = unpaced_client(server)
        try:
            # when 70 order list calls arrive in one minute, then every one is answered
            for _ in range(70):
                client.list_page(ORDER_LIST, 1, 1)
            assert client.call("POST", CUSTOMER_LIST, body={"pageIndex": 1, "pageSize": 1})
        finally:
            client.close()
    assert server.app.state.yonyou.quota.refused == 0


QUOTA = 5
WINDOW_S = 2.0


def test_the_hub_paced_at_the_quota_syncs_more_orders_than_the_quota_without_one_refusal(
        settings, db, monkeypatch):
    # given a tenant allowing 5 calls per order API in any 2 s (the minute shortened for the
    # test), and a hub paced at the same quota
    monkeypatch.setattr(yonyou_client, "QUOTA_WINDOW_S", WINDOW_S)
    paced = settings.with_connector("yonyou", page_size=25, order_calls_per_minute=QUOTA)
    runtime = HubRuntime(paced, db, actor="test")
    try:
        sandbox = runtime.sandbox("yonyou", scale=0.01, order_calls_per_minute=QUOTA,
                                  quota_window_s=WINDOW_S).app.state.yonyou
        runtime.sync("yonyou", "customers")
        # when its ~200 order lines are read 25 a page (more list calls than the quota allows)
        (report,) = runtime.sync("yonyou", "sales_orders")
    finally:
        runtime.close()
    # then the sandbox never refused a call: the client waited instead
    assert sandbox.quota.refused == 0
    assert sandbox.requests["sd/voucherorder/list"] > QUOTA
    # and every order arrived
    assert report.counts.read == len(sandbox.data.orders)
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE source_system = 'yonyou'") == len(sandbox.data.orders)
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0


def test_the_quota_setting_defaults_to_the_free_60_and_refuses_a_negative_one():
    assert YonyouSettings().order_calls_per_minute == 60
    with pytest.raises(ValidationError):
        YonyouSettings(order_calls_per_minute=-1)
