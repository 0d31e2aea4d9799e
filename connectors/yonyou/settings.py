"""Yonyou YonBIP settings: the ``HUB_YONYOU__*`` variables (or ``[yonyou]`` in hub.toml).

A real tenant needs ``base_url`` (the data-centre discovery host,
``https://apigateway.yonyoucloud.com``), the tenant id and the self-built app's
``app_key`` / ``app_secret`` (erp-apis.md §2.2). The gateway and token addresses are
discovered per tenant (``getGatewayAddress``); a private deployment without discovery sets
``gateway_url`` and ``token_url`` instead.

The sales-order fields YonBIP requires on ``voucherorder/singleSave`` (§2.5: sales org,
transaction type, stock org, unit, tax rate) are archive codes of the tenant; their defaults
are those of the sandbox and of a new YonBIP tenant's preset data as far as the reference
shows (``global00`` is the reference's org code; the others are guesses, marked below).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from hub.contracts import ConnectorSettings

# Calls in flight at once (hub.outbox.slots: a slot per HTTP exchange) against one tenant, across every dispatcher. The reference gives
# only per-minute quotas (sales order list/detail/singleSave: 60 calls a minute from
# 2026-03-31, §2.3) and no concurrency figure: 3 is a GUESS that keeps a three-call push
# (save, submit, audit) of a few orders at once well inside 60 calls a minute. The sandbox
# enforces the same number and answers 310046 (API rate limit) beyond it.
DEFAULT_MAX_CONCURRENT_CALLS = 3
# The announced "free" quota of the sales order list, detail and singleSave APIs: 60 calls a
# minute per API from 2026-03-31 (erp-apis.md §2.3 [DOC]). Whether the platform counts a
# sliding or a fixed minute is undocumented; the client paces a sliding one (safe for both).
DEFAULT_ORDER_CALLS_PER_MINUTE = 60
DISCOVERY_URL = "https://apigateway.yonyoucloud.com"


class YonyouSettings(ConnectorSettings):
    """YonBIP open API connection and read/write policy."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("tenant_id", "app_key", "app_secret")

    base_url: str | None = Field(None, description=f"data-centre discovery host ({DISCOVERY_URL})")
    tenant_id: str | None = Field(None, description="tenant id (租户ID), for gateway discovery")
    app_key: str | None = Field(None, description="the self-built app's appKey")
    app_secret: SecretStr | None = Field(None, description="the self-built app's appSecret")
    gateway_url: str | None = Field(None, description="…/iuap-api-gateway; unset: discovered")
    token_url: str | None = Field(None, description="…/iuap-api-auth; unset: discovered")
    timeout_s: float = Field(default=30.0, gt=0, description="seconds to wait for a reply")
    page_size: int = Field(default=500, ge=1, le=500,
                           description="rows per list page (AR list caps at 500, customers at 5,000)")
    overlap_s: int = Field(default=300, ge=0, description="seconds re-read before the pubts cursor")
    submit_and_audit: bool = Field(default=True, description="take pushed orders through batchsubmit and batchaudit")
    org_code: str = Field(default="global00", description="sales, settlement and stock organisation code")
    transaction_type_code: str = Field(default="SO01", description="sales order transaction type (a guess: SO01)")
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=64,
                                      description="calls in flight at once (a slot per HTTP exchange), all dispatchers together (a guess)")
    order_calls_per_minute: int | None = Field(
        default=DEFAULT_ORDER_CALLS_PER_MINUTE, ge=0,
        description="calls a minute per sales order API (list, detail, singleSave): the free quota announced "
                    "from 2026-03-31 (erp-apis.md §2.3); 0: a purchased quota, no pacing")
    sync_cron: str = Field(default="*/15 * * * *", description="cron of yonyou_inbound")
