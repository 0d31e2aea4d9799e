"""CPU per sales order mapped: a page of 500 orders (1-5 lines each, as the sandboxes seed
them), record by record and, where the stream has one, a page at a time.

    .venv/bin/python benchmarks/order_mapping.py [--tree DIR] [--profile]

``--tree DIR`` times another checkout's mappings (``git archive <commit> | tar -x -C DIR``),
for a before/after in the same run. Each figure is the best of 15 runs (process CPU time),
with the quantity readers' tables emptied before each run: only what repeats within the
page is reused, as on a first load.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ORDERS = 500


def _lines(rng: random.Random) -> list[tuple[int, Decimal, Decimal]]:
    """(quantity, price, amount) of an order's lines: JSON numbers as both clients read them
    (``parse_float=Decimal``: ``565.0`` is ``Decimal('565.0')``, ``2`` an int)."""
    lines = []
    for _ in range(rng.choices((1, 2, 3, 4, 5), weights=(35, 30, 20, 10, 5))[0]):
        qty = rng.choice((1, 2, 3, 5, 10, 20))
        price = Decimal(repr(round(rng.uniform(10, 900), 2)))
        lines.append((qty, price, qty * price))
    return lines


def kingdee_page(rng: random.Random) -> list[dict[str, Any]]:
    """Grouped ``SAL_SaleOrder`` rows as the Kingdee stream maps them."""
    page = []
    for i in range(ORDERS):
        lines = _lines(rng)
        page.append({
            "FID": 100000 + i, "FBillNo": f"XSDD{i:06d}", "FDate": "2024-04-28T00:00:00",
            "FCustId.FNumber": "CUST00017", "FSalerId.FNumber": "SP003", "FDocumentStatus": "C", "FCloseStatus": "A",
            "FSettleCurrId.FNumber": "PRE001", "FBillAllAmount": sum(a for _, _, a in lines),
            "FModifyDate": "2024-05-02T09:00:00",
            "lines": [{"FID": 100000 + i, "FSaleOrderEntry_FEntryID": n, "FMaterialId.FNumber": f"WL{n:04d}",
                       "FMaterialId.FName": "伺服电机 A型", "FQty": Decimal(f"{q}.0"), "FTaxPrice": p, "FEntryTaxRate": Decimal("13.0"),
                       "FAllAmount": a} for n, (q, p, a) in enumerate(lines, 1)],
        })
    return page


def yonyou_page(rng: random.Random) -> list[dict[str, Any]]:
    """Grouped ``voucherorder`` rows as the Yonyou stream maps them (quantities as ints)."""
    page = []
    for i in range(ORDERS):
        lines = _lines(rng)
        page.append({
            "id": str(i), "code": f"SO{i}", "vouchdate": "2026-11-01 00:00:00", "agentId_code": "YYC00001",
            "payMoney": sum(a for _, _, a in lines), "orderPrices!currency": "CNY", "verifystate": 2,
            "pubts": "2026-11-02 09:00:00",
            "orderDetails": [{"lineno": n, "productId_code": f"P-{n}", "productId_name": "工业网关 G200", "qty": q,
                              "oriTaxUnitPrice": p, "oriSum": a, "taxRate": 13}
                             for n, (q, p, a) in enumerate(lines, 1)],
        })
    return page


def best(run: Callable[[], Any], fields: Any) -> float:
    """The least CPU seconds of 15 runs, the quantity tables emptied before each."""
    least = float("inf")
    for _ in range(15):
        for table in getattr(fields, "_QUANTITIES", {}).values():
            table.clear()
        start = time.process_time()
        run()
        least = min(least, time.process_time() - start)
    return least


def main() -> None:
    """Print us per order for each ERP and path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--profile", action="store_true", help="cProfile the Kingdee page path")
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    from connectors.kingdee import mapping as kingdee
    from connectors.kit import fields
    from connectors.yonyou import mapping as yonyou

    for name, module, page in (("kingdee", kingdee, kingdee_page(random.Random(7))),
                               ("yonyou", yonyou, yonyou_page(random.Random(7)))):
        lines = sum(len(order.get("lines") or order.get("orderDetails")) for order in page)
        one = module.map_sales_order
        figures = [f"record by record {best(lambda one=one, page=page: [one(r) for r in page], fields) / ORDERS * 1e6:.1f} us"]
        paged = getattr(module, "SALES_ORDER_MAPPING", None)
        if paged is not None:
            if paged.page(page) is None:
                raise SystemExit(f"{name}: the page path gave the page up")
            figures.append(f"page at a time {best(lambda paged=paged, page=page: paged.page(page), fields) / ORDERS * 1e6:.1f} us")
        print(f"{name}: {ORDERS} orders, {lines} lines; per order: {', '.join(figures)}  ({args.tree})")
    if args.profile:
        page = kingdee_page(random.Random(7))
        profile = cProfile.Profile()
        profile.runcall(lambda: [kingdee.SALES_ORDER_MAPPING.page(page) for _ in range(5)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
