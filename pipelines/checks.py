"""Asset checks, generated from the registry and placed on the assets they judge.

- every stream: ``quarantine_growth`` (warn) — new quarantined records in the last 24 h;
- every stream into ``receivable``: ``open_receivables_match`` (blocking) — open amount per
  customer equals the source system's, read through the stream itself; blocking because
  collection tasks are built on these numbers and must not chase money already paid;
- every push asset: ``outbox_not_stuck`` and ``no_dead_letters`` (warn) for its kind;
  for ``*.sales_order`` kinds also ``approved_orders_reached_erp`` (blocking);
- ``crm/receivable_followups``: ``customers_without_owner`` (warn) — customers in the public
  pool (no owner after the ERP salespeople were linked), and how many of them are overdue.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    asset_check,
)

from hub.contracts import ConnectorSpec, StreamSpec
from hub.registry import specs
from hub.rules.pool import ownerless_customers
from pipelines.assets import push_key, stream_key
from pipelines.resources import HubResource
from pipelines.rule_assets import RECEIVABLE_FOLLOWUPS

ORDER_DEADLINE_MIN = 30
OUTBOX_MAX_AGE_MIN = 30


def quarantine_growth_check(system: str, stream: str) -> AssetChecksDefinition:
    """A warn-level check on new quarantine rows of one stream in the last 24 h."""

    @asset_check(asset=stream_key(system, stream), name="quarantine_growth",
                 description="New quarantined records in the last 24 h (warn).")
    def _check(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime(f"check:quarantine:{system}/{stream}") as runtime, runtime.db.begin() as conn:
            new, total = conn.execute(sa.text(
                "SELECT count(*) FILTER (WHERE created_at > now() - interval '1 day'), count(*) FROM quarantine "
                "WHERE system = :s AND stream = :st AND status = 'open'"), {"s": system, "st": stream}).one()
        return AssetCheckResult(passed=new == 0, severity=AssetCheckSeverity.WARN,
                                metadata={"new_last_24h": new, "open_total": total})

    return _check


def source_open_receivables(runtime: Any, system: str, stream: StreamSpec[Any]) -> dict[str, Decimal]:
    """Open amount per source customer number, read from the source through the stream itself.

    Records the mapping refuses are left out: they are in quarantine, which its own check
    reports; a customer missing on one side shows as a mismatch.
    """
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for page in stream.read_pages(runtime.client(system), None):
        for raw in page.records:
            try:
                record: Any = stream.map_record(raw)
            except (ValueError, TypeError, KeyError, ArithmeticError):
                continue
            totals[record.customer_ref] += record.open_amount
    return dict(totals)


def hub_open_receivables(conn: sa.Connection, system: str) -> dict[str, Decimal]:
    """Open amount per source customer number, as the hub has it."""
    rows = conn.execute(sa.text(
        "SELECT e.external_id, sum(r.open_amount) FROM receivable r JOIN external_identity e "
        "ON e.canonical_id = r.customer_id AND e.system = :s AND e.object = 'customer' "
        "WHERE r.source_system = :s GROUP BY e.external_id"), {"s": system})
    return {ext: total for ext, total in rows}


def receivables_match_check(spec: ConnectorSpec[Any, Any], stream: StreamSpec[Any]) -> AssetChecksDefinition:
    """Blocking: open receivables per customer equal the source system's."""
    system = spec.system

    @asset_check(asset=stream_key(system, stream.name), name="open_receivables_match", blocking=True,
                 description=f"Open receivables per customer equal {spec.title}'s.")
    def _check(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime(f"check:receivables:{system}") as runtime:
            source = source_open_receivables(runtime, system, stream)
            with runtime.db.begin() as conn:
                ours = hub_open_receivables(conn, system)
        missing = {k for k in source if k not in ours and source[k] != 0}
        mismatched = {k: (source.get(k, Decimal(0)), ours.get(k, Decimal(0))) for k in set(source) | set(ours)
                      if source.get(k, Decimal(0)) != ours.get(k, Decimal(0))}
        sample = dict(sorted(mismatched.items())[:10])
        return AssetCheckResult(
            passed=not mismatched,
            metadata={"customers_compared": len(set(source) | set(ours)), "mismatched": len(mismatched),
                      "source_total": str(sum(source.values(), Decimal(0))),
                      "hub_total": str(sum(ours.values(), Decimal(0))), "missing_in_hub": len(missing),
                      "sample": {k: f"{system} {a} / hub {b}" for k, (a, b) in sample.items()}},
        )

    return _check


def outbox_checks(kind: str) -> list[AssetChecksDefinition]:
    """Checks on a push asset: rows not stuck, dead letters, and for ERP orders the deadline."""
    key = push_key(kind)
    system = kind.partition(".")[0]

    @asset_check(asset=key, name="outbox_not_stuck",
                 description=f"No {kind} outbox row pending for more than {OUTBOX_MAX_AGE_MIN} min.")
    def not_stuck(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime(f"check:outbox:{kind}") as runtime, runtime.db.begin() as conn:
            stuck = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE kind = :k AND status IN ('pending', 'in_progress') "
                "AND created_at < now() - make_interval(mins => :m)"), {"k": kind, "m": OUTBOX_MAX_AGE_MIN}
            ).scalar_one()
        return AssetCheckResult(passed=stuck == 0, metadata={"stuck": stuck})

    @asset_check(asset=key, name="no_dead_letters", description=f"{kind} dead letters waiting for a person (warn).")
    def no_dead(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime(f"check:dlq:{kind}") as runtime, runtime.db.begin() as conn:
            dead = conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE kind = :k AND status IN ('dead', 'failed')"), {"k": kind}
            ).scalar_one()
        return AssetCheckResult(passed=dead == 0, severity=AssetCheckSeverity.WARN,
                                metadata={"dead_letters": dead, "replay": "hub dlq list / hub dlq replay ID"})

    checks = [not_stuck, no_dead]
    if kind.endswith(".sales_order"):

        @asset_check(asset=key, name="approved_orders_reached_erp", blocking=True,
                     description=f"Every CRM order approved over {ORDER_DEADLINE_MIN} min ago for {system} "
                                 "has an ERP bill number.")
        def reached(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
            with hub.runtime(f"check:orders:{system}") as runtime, runtime.db.begin() as conn:
                late = conn.execute(sa.text(
                    "SELECT order_number FROM sales_order WHERE source_system = 'crm' AND approval_state = "
                    "'approved' AND erp_system = :s AND erp_bill_number IS NULL "
                    "AND approved_at < now() - make_interval(mins => :m) ORDER BY id"),
                    {"s": system, "m": ORDER_DEADLINE_MIN}).scalars().all()
            return AssetCheckResult(passed=not late, metadata={"late_orders": len(late), "sample": ", ".join(late[:10])})

        checks.append(reached)
    return checks


def owners_check() -> AssetChecksDefinition:
    """Warn: customers without an owner (the public pool), with the overdue ones among them."""

    @asset_check(asset=RECEIVABLE_FOLLOWUPS, name="customers_without_owner",
                 description="Customers without an owner (公海池) after ERP salespeople were linked (warn); their "
                             "overdue receivables go to the finance recipients.")
    def _check(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime("check:owners") as runtime, runtime.db.begin() as conn:
            count = ownerless_customers(conn)
            overdue = conn.execute(sa.text(
                "SELECT count(DISTINCT c.id) FROM customer c JOIN receivable r ON r.customer_id = c.id "
                "WHERE c.owner_id IS NULL AND r.open_amount > 0 AND r.due_date < :today"),
                {"today": dt.datetime.now(ZoneInfo(runtime.settings.timezone)).date()}).scalar_one()
            total = conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one()
        return AssetCheckResult(passed=count == 0, severity=AssetCheckSeverity.WARN,
                                metadata={"customers_without_owner": count, "overdue_without_owner": overdue,
                                          "customers": total})

    return _check


def all_checks() -> list[AssetChecksDefinition]:
    """Every check of every registered connector's assets, and of the rules' assets."""
    found: list[AssetChecksDefinition] = [owners_check()]
    for spec in specs():
        for stream in spec.streams:
            found.append(quarantine_growth_check(spec.system, stream.name))
            if stream.target == "receivable":
                found.append(receivables_match_check(spec, stream))
        for kind in spec.writer_kinds:
            found.extend(outbox_checks(kind))
    return found
