"""Kingdee's registry entry: how the hub core builds its client, streams, writer and sandbox.

Everything here is built from :class:`~connectors.kingdee.settings.KingdeeSettings`; the
sandbox (``connectors.kingdee.sandbox``) is named by module path and loaded only in
sandbox mode. What a pushed order's outcome changes on the CRM order is the domain
rules' business (``hub.rules.orders`` registers it for every ``*.sales_order`` kind).
"""

from __future__ import annotations

from collections.abc import Iterator

from connectors.kingdee.client import KingdeeClient
from connectors.kingdee.settings import KingdeeSettings
from connectors.kingdee.streams import STREAMS
from connectors.kingdee.writers import SalesOrderWriter
from hub.calls import CallObserver
from hub.contracts import CallLimits, ConnectorSpec, Salesperson

SYSTEM = "kingdee"


def make_client(settings: KingdeeSettings, observer: CallObserver) -> KingdeeClient:
    """A client for the data centre the settings name (the runtime checked they are complete)."""
    assert settings.base_url and settings.acct_id and settings.username and settings.app_id and settings.app_secret
    return KingdeeClient(
        base_url=settings.base_url, acct_id=settings.acct_id, username=settings.username, app_id=settings.app_id,
        app_secret=settings.app_secret, auth_mode=settings.auth_mode, lcid=settings.lcid,
        org_num=settings.org_num, timeout=settings.timeout_s, observer=observer,
        read_page_size=settings.page_size, read_overlap_s=float(settings.overlap_s),
        max_concurrent_reads=settings.max_concurrent_calls,
    )


def make_sales_order_writer(client: KingdeeClient, settings: KingdeeSettings) -> SalesOrderWriter:
    """The ``kingdee.sales_order`` writer (Submit + Audit per tenant policy)."""
    return SalesOrderWriter(client, submit_and_audit=settings.submit_and_audit)


def call_limits(settings: KingdeeSettings) -> CallLimits:
    """Calls in flight against the data centre, counted per HTTP exchange as the sandbox and the
    data centre count requests (a guess: ``KingdeeSettings.max_concurrent_calls``)."""
    return CallLimits(concurrency=settings.max_concurrent_calls, per_call=True)


def salespeople(client: KingdeeClient) -> Iterator[Salesperson]:
    """``BD_Saler``: number and name (the sandbox's, and a standard form's, carry no mobile)."""
    for page in client.query_pages("BD_Saler", ["FNumber", "FName", "FForbidStatus"], order_string="FNumber"):
        for row in page:
            if row.get("FNumber") and row.get("FName"):
                yield Salesperson(str(row["FNumber"]), str(row["FName"]), active=row.get("FForbidStatus") != "B")


CONNECTOR: ConnectorSpec[KingdeeSettings, KingdeeClient] = ConnectorSpec(
    system=SYSTEM,
    title="Kingdee K/3 Cloud 金蝶云·星空",
    settings_model=KingdeeSettings,
    make_client=make_client,
    streams=STREAMS,
    writers={"sales_order": make_sales_order_writer},
    sandbox="connectors.kingdee.sandbox",
    limits=call_limits,
    salespeople=salespeople,
)
