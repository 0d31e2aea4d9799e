"""Customer merge benchmark: two ERPs describing the same companies, through the engine.

    .venv/bin/python benchmarks/customers.py [--customers 5000] [--repeat 3]

Each round, on a fresh schema, N companies:

1. *first load*: Kingdee's N customers into an empty hub (every one a new golden record);
2. *second ERP*: YonBIP's N customers of the same companies (same credit codes, other
   industry and address): every record resolves to an existing golden customer, which is
   settled from both records' values (``hub.survivorship``);
3. *re-apply*: both ERPs' customers again with their content hashes forgotten (what
   ``hub.rules.salespeople`` does when it links a salesperson): every record reaches the
   merge, nothing should be written;
4. *re-sync*: a plain ``--full`` re-sync of one ERP (skipped by content hash before the merge).

Prints rows/s per phase per round and the median, plus how many customer rows the re-apply
wrote (``updated_at`` moved). Uses ``HUB_TEST_DATABASE_URL``, else Postgres on
127.0.0.1:5432/test, else the embedded one. Run it on two commits to compare them: it uses
only ``sync_stream`` and the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest import database_url, drop, fresh_db
from canonical_model.records import CustomerRecord
from hub.contracts import Page, StreamSpec
from hub.database import Database
from hub.engine import sync_stream
from tests.support.synthetic import synthetic_credit_code

PAGE = 1000
INDUSTRIES = ("制造业", "信息技术", "物流运输", "医药健康", "能源化工")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def records(system: str, n: int) -> list[dict[str, Any]]:
    """The N companies as ``system`` holds them (the two ERPs differ in industry and address)."""
    shift = 0 if system == "kingdee" else 2
    return [{"id": f"{system[:1].upper()}{i:06d}", "name": f"第{i}号精密机械有限公司", "code": synthetic_credit_code(i + 1),
             "industry": INDUSTRIES[(i + shift) % len(INDUSTRIES)], "address": f"{system}路{i}号",
             "phone": f"0512-{i:08d}", "modified": (T0 + dt.timedelta(minutes=i)).isoformat()} for i in range(n)]


def stream(system: str) -> StreamSpec:
    def read(rows: list[dict[str, Any]], cursor: str | None) -> Iterator[Page]:
        for start in range(0, len(rows), PAGE):
            yield Page(rows[start:start + PAGE], None)

    return StreamSpec(
        name="customers", source_object="customer", target="customer", key_field="id", cursor_field=None,
        read_pages=read,
        map_record=lambda raw: CustomerRecord(
            source_system=system, source_object="customer", external_id=raw["id"], name=raw["name"],
            credit_code=raw["code"], industry=raw["industry"], address=raw["address"], phone=raw["phone"],
            modified_at=dt.datetime.fromisoformat(raw["modified"])),
    )


def timed(db: Database, system: str, rows: list[dict[str, Any]], *, full: bool = False) -> float:
    started = time.perf_counter()
    sync_stream(db, system, stream(system), rows, full=full)
    return time.perf_counter() - started


def one_round(url: str, n: int) -> dict[str, float]:
    kingdee, yonyou = records("kingdee", n), records("yonyou", n)
    db = fresh_db(url)
    try:
        first = timed(db, "kingdee", kingdee)
        second = timed(db, "yonyou", yonyou)
        with db.begin() as conn:
            before = dict(conn.execute(sa.text("SELECT id, updated_at FROM customer")).all())
            conn.execute(sa.text("UPDATE external_identity SET content_hash = NULL WHERE object = 'customer'"))
        reapply = timed(db, "kingdee", kingdee) + timed(db, "yonyou", yonyou)
        with db.begin() as conn:
            after = dict(conn.execute(sa.text("SELECT id, updated_at FROM customer")).all())
        resync = timed(db, "kingdee", kingdee, full=True)
    finally:
        drop(db)
    return {"first load": n / first, "second ERP": n / second, "re-apply": 2 * n / reapply,
            "re-sync": n / resync, "rows written by re-apply": float(sum(after[k] != before[k] for k in before))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = database_url()
    rounds = []
    for i in range(args.repeat):
        result = one_round(url, args.customers)
        rounds.append(result)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:,.0f}" + ("" if k.startswith("rows") else " rows/s")
                                              for k, v in result.items()), flush=True)
    print("median:  " + ", ".join(f"{k} {statistics.median(r[k] for r in rounds):,.0f}"
                                  + ("" if k.startswith("rows") else " rows/s") for k in rounds[0]))


if __name__ == "__main__":
    main()
