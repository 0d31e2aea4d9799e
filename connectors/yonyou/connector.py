"""Yonyou's registry entry: how the hub core builds its client, streams, writer and sandbox.

Everything here is built from :class:`~connectors.yonyou.settings.YonyouSettings`; the
sandbox (``connectors.yonyou.sandbox``) is named by module path and loaded only in sandbox
mode. What a pushed order's outcome changes on the CRM order is the domain rules' business
(``hub.rules.orders`` registers it for every ``*.sales_order`` kind).
"""

from __future__ import annotations

from collections.abc import Iterator

from connectors.yonyou.client import MAX_LIST_PAGE, STAFF_LIST, YonyouClient
from connectors.yonyou.settings import YonyouSettings
from connectors.yonyou.streams import STREAMS
from connectors.yonyou.writers import SalesOrderWriter
from hub.calls import CallObserver
from hub.contracts import CallLimits, ConnectorSpec, Salesperson

SYSTEM = "yonyou"


def make_client(settings: YonyouSettings, observer: CallObserver) -> YonyouClient:
    """A client for the tenant the settings name (the runtime checked they are complete)."""
    assert settings.base_url and settings.tenant_id and settings.app_key and settings.app_secret
    return YonyouClient(
        base_url=settings.base_url, tenant_id=settings.tenant_id, app_key=settings.app_key,
        app_secret=settings.app_secret, gateway_url=settings.gateway_url, token_url=settings.token_url,
        timeout=settings.timeout_s, observer=observer, read_page_size=settings.page_size,
        read_overlap_s=float(settings.overlap_s), order_calls_per_minute=settings.order_calls_per_minute,
        max_concurrent_reads=settings.max_concurrent_calls,
    )


def make_sales_order_writer(client: YonyouClient, settings: YonyouSettings) -> SalesOrderWriter:
    """The ``yonyou.sales_order`` writer (batchsubmit + batchaudit per tenant policy)."""
    return SalesOrderWriter(client, org_code=settings.org_code, transaction_type=settings.transaction_type_code,
                            submit_and_audit=settings.submit_and_audit)


def call_limits(settings: YonyouSettings) -> CallLimits:
    """Calls in flight against the tenant, counted per HTTP exchange as the gateway counts requests
    (a guess: ``YonyouSettings.max_concurrent_calls``)."""
    return CallLimits(concurrency=settings.max_concurrent_calls, per_call=True)


def salespeople(client: YonyouClient) -> Iterator[Salesperson]:
    """The staff archive (code, name, mobile, e-mail; its path is a guess, see the client)."""
    for page in client.list_pages(STAFF_LIST, MAX_LIST_PAGE):
        for person in page.records:
            if person.get("code") and person.get("name"):
                # the staff code is the person's 员工编码 in YonBIP's staff archive: taken as the
                # employee number (a guess; a tenant may number staff apart from HR)
                yield Salesperson(str(person["code"]), str(person["name"]), person.get("mobile") or None,
                                  person.get("email") or None, active=person.get("enable", 1) == 1,
                                  employee_number=str(person["code"]))


CONNECTOR: ConnectorSpec[YonyouSettings, YonyouClient] = ConnectorSpec(
    system=SYSTEM,
    title="Yonyou YonBIP 用友",
    settings_model=YonyouSettings,
    make_client=make_client,
    streams=STREAMS,
    writers={"sales_order": make_sales_order_writer},
    sandbox="connectors.yonyou.sandbox",
    limits=call_limits,
    salespeople=salespeople,
)
