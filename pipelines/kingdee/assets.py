"""Kingdee inbound assets: kingdee/customers, kingdee/sales_orders, kingdee/receivables, kingdee/receipts."""

from __future__ import annotations

from pipelines.sync_assets import system_assets

KINGDEE_ASSETS = system_assets("kingdee")
