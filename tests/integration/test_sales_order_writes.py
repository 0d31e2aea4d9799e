"""How ERP sales orders are written: a first load's fast path (COPY, lines in one INSERT)
stores exactly what the merge stores, and a changed order's lines are replaced.

Real Postgres and the Kingdee sandbox in-process; the engine as ``hub sync`` runs it.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.kingdee.sandbox.state import ENTRIES
from hub.engine import targets
from hub.runtime import HubRuntime
from tests.conftest import rows

pytestmark = pytest.mark.e2e

ORDER_COLUMNS = ("source_system", "external_id", "content_hash", "customer_id", "order_number", "order_date",
                 "currency", "total_amount", "status", "erp_system", "erp_bill_number", "erp_status")


def stored_orders(db: Any) -> tuple[dict[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The ERP orders as stored (by bill number, without ids and times) and every line in id order."""
    orders = {r.erp_bill_number: tuple(getattr(r, c) for c in ORDER_COLUMNS)
              for r in rows(db, f"SELECT {', '.join(ORDER_COLUMNS)} FROM sales_order WHERE source_system = 'kingdee'")}
    lines = [tuple(r) for r in rows(db, (
        "SELECT o.erp_bill_number, l.line_no, l.product_code, l.product_name, l.quantity, l.unit_price, "
        "l.tax_rate, l.amount FROM sales_order_line l JOIN sales_order o ON o.id = l.order_id ORDER BY l.id"))]
    return orders, lines


@pytest.fixture
def runtime(settings, db):
    hub = HubRuntime(settings, db, actor="test")
    hub.sandbox("kingdee", scale=0.02)  # 40 customers, 400 orders
    hub.sync("kingdee", "customers")
    yield hub
    hub.close()


def test_a_first_load_stores_the_orders_and_lines_the_merge_stores(runtime, db, monkeypatch):
    # given the ERP's orders loaded through the merge (as when some of a page were stored before)
    def merged(ctx: targets.PageContext, mapped: Any) -> targets.TargetOutcome:
        return targets.upsert_sales_orders(replace(ctx, all_new=False, guarded=False), mapped)

    with monkeypatch.context() as patched:
        patched.setitem(targets.HANDLERS, "sales_order", merged)
        (through_merge,) = runtime.sync("kingdee", "sales_orders")
    expected = stored_orders(db)
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM sales_order WHERE source_system = 'kingdee'"))  # lines cascade
        conn.execute(sa.text("DELETE FROM sync_cursor WHERE connector = 'kingdee' AND stream = 'sales_orders'"))

    # when they are loaded again into a hub that holds none of them (the all-new fast path)
    (first_load,) = runtime.sync("kingdee", "sales_orders")

    # then the same orders and lines are stored, lines in the same order, with the same counts
    assert stored_orders(db) == expected
    assert len(expected[0]) > 300 and len(expected[1]) > len(expected[0])
    assert first_load.counts == through_merge.counts
    assert first_load.counts.inserted == len(expected[0])


def test_an_order_whose_lines_changed_holds_exactly_its_new_lines(runtime, db):
    # given the orders synced
    runtime.sync("kingdee", "sales_orders")
    state = runtime.sandbox("kingdee").app.state.kingdee.data
    table = state.table("SAL_SaleOrder")
    doc = next(d for d in table.docs.values() if len(d[ENTRIES]["FSaleOrderEntry"]) >= 2)
    _, lines_before = stored_orders(db)
    assert sum(1 for line in lines_before if line[0] == doc["FBillNo"]) >= 2

    # when the ERP user keeps only its first line, with one more of it, and saves the order
    first = dict(doc[ENTRIES]["FSaleOrderEntry"][0])
    first["FQty"] += 1
    first["FAllAmount"] = (first["FQty"] * first["FTaxPrice"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
    doc[ENTRIES]["FSaleOrderEntry"] = [first]
    doc["FBillAllAmount"] = first["FAllAmount"]
    doc["FModifyDate"] = state.now()
    state.version += 1  # as the sandbox's own saves do: its query indexes are rebuilt
    (report,) = runtime.sync("kingdee", "sales_orders")

    # then that order was updated and holds that one line only; every other order kept its lines
    assert report.counts.updated == 1 and report.counts.inserted == 0
    _, lines_after = stored_orders(db)
    assert [line[1:] for line in lines_after if line[0] == doc["FBillNo"]] == [
        (1, *(line[2:4]), first["FQty"], first["FTaxPrice"], first["FEntryTaxRate"], first["FAllAmount"])
        for line in lines_before if line[0] == doc["FBillNo"] and line[1] == 1]
    assert [line for line in lines_after if line[0] != doc["FBillNo"]] == [
        line for line in lines_before if line[0] != doc["FBillNo"]]
