"""Kingdee's registry entry: how the hub core builds its client, streams, writer and sandbox.

:class:`HubSalesOrderWriter` adds the outbox's write-back to the effect half in
:mod:`connectors.kingdee.writers`: the ERP bill number and document status go onto the
CRM order, and the Kingdee customer number used (or created) is linked to the golden
customer, in the dispatcher's transaction.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from connectors.kingdee.client import KingdeeClient
from connectors.kingdee.sandbox import SANDBOX_CREDENTIALS, create_app
from connectors.kingdee.streams import STREAMS
from connectors.kingdee.writers import SalesOrderWriter
from hub.calls import CallObserver
from hub.contracts import ConnectorSpec, WriteResult
from hub.errors import ConfigError
from hub.orders import record_erp_failure, record_erp_result
from hub.settings import Settings

SYSTEM = "kingdee"


def make_client(settings: Settings, observer: CallObserver, sandbox_url: str | None) -> KingdeeClient:
    """A client for the configured data centre, or for the in-process sandbox."""
    cfg = settings.kingdee
    common: dict[str, Any] = {"lcid": cfg.lcid, "org_num": cfg.org_num, "timeout": cfg.timeout_s,
                              "observer": observer, "read_page_size": cfg.page_size,
                              "read_overlap_s": float(cfg.overlap_s)}
    if sandbox_url is not None:
        sandbox = SANDBOX_CREDENTIALS
        return KingdeeClient(base_url=sandbox_url.rstrip("/") + "/k3cloud/", acct_id=sandbox.acct_id,
                             username=sandbox.username, app_id=sandbox.app_id,
                             app_secret=SecretStr(sandbox.app_secret), auth_mode="signed", **common)
    missing = [name for name in ("acct_id", "username", "app_id", "app_secret") if not getattr(cfg, name)]
    if missing:
        raise ConfigError("Kingdee needs " + ", ".join(f"HUB_KINGDEE__{m.upper()}" for m in missing)
                          + " (or no HUB_KINGDEE__BASE_URL, for the sandbox)")
    assert cfg.base_url and cfg.app_secret and cfg.acct_id and cfg.username and cfg.app_id
    return KingdeeClient(base_url=cfg.base_url, acct_id=cfg.acct_id, username=cfg.username, app_id=cfg.app_id,
                         app_secret=cfg.app_secret, auth_mode=cfg.auth_mode,  # type: ignore[arg-type]
                         **common)


class HubSalesOrderWriter(SalesOrderWriter):
    """The sales-order writer plus its write-back onto the CRM order."""

    def record_result(self, conn: Any, payload: dict[str, Any], result: WriteResult) -> None:
        """ERP bill number and status onto the CRM order; link the ERP customer number."""
        record_erp_result(conn, int(payload["order_id"]), SYSTEM, result.external_id, result.status,
                          customer_number=result.detail.get("customer_number"),
                          customer_id=payload.get("customer", {}).get("id"))

    def record_failure(self, conn: Any, payload: dict[str, Any], error: Exception) -> None:
        """Show a refused or dead-lettered push on the CRM order."""
        record_erp_failure(conn, int(payload["order_id"]), error)


def make_writer(kind: str, client: KingdeeClient, settings: Settings) -> HubSalesOrderWriter:
    """The writer for an outbox kind of this connector (Submit + Audit per tenant policy)."""
    if kind != "kingdee.sales_order":
        raise ConfigError(f"kingdee has no writer for {kind!r}")
    return HubSalesOrderWriter(client, submit_and_audit=settings.kingdee.submit_and_audit)


def _check(client: KingdeeClient) -> None:
    client.check()


CONNECTOR = ConnectorSpec(
    system=SYSTEM,
    title="Kingdee K/3 Cloud 金蝶云·星空",
    make_client=make_client,
    streams=STREAMS,
    writer_kinds=("kingdee.sales_order",),
    make_writer=make_writer,
    make_sandbox=create_app,
    check=_check,
)
