"""At 80 columns the CLI never cuts an identifier or an amount (it wraps text or drops
lower-value columns instead)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.kingdee.sandbox.testing import running_sandbox
from hub.cli import app
from hub.cli.tables import Column, fit
from hub.outbox import enqueue
from tests.support.dispatchers import dispatcher_env

NARROW = {"COLUMNS": "80", "LINES": "50"}


@pytest.fixture
def env(db, monkeypatch, tmp_path):
    """The CLI pointed at this test's schema and a small Kingdee sandbox on a loopback port.

    Small on purpose: what is under test is the 80-column layout, which is the same at 400
    records as at the default sandbox's ~42,000 (whose sync cost this file ~40 s)."""
    with running_sandbox(scale=0.01) as erp:
        for name, value in dispatcher_env(db, tmp_path, sandboxes={"kingdee": erp.server.url}).items():
            if name.startswith("HUB_") or name.lower() == "no_proxy":
                monkeypatch.setenv(name, value)
        yield db


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=NARROW)
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout, result.stdout
    return result.stdout


def test_sync_names_every_stream_in_full_at_80_columns(env):
    out = run("sync", "kingdee")
    for stream in ("customers", "sales_orders", "receivables", "receipts"):
        assert f"kingdee/{stream}" in out


def test_profile_shows_every_amount_in_full_at_80_columns(env):
    run("sync", "kingdee")
    with env.begin() as conn:
        customer = conn.execute(sa.text(
            "SELECT customer_id FROM receivable GROUP BY customer_id ORDER BY sum(open_amount) DESC LIMIT 1")).scalar()
    profile = json.loads(run("profile", str(customer), "--json"))
    out = run("profile", str(customer))
    for summary in profile["receivables"]:
        assert f"{float(summary['open_amount']):,.2f}" in out
        for amount in summary["aging"].values():
            if amount is not None and float(amount):
                assert f"{float(amount):,.2f}" in out
    for order in profile["recent_orders"]:
        assert order["order_number"] in out


def test_dlq_list_shows_long_keys_in_full_at_80_columns(env):
    key = "kingdee.sales_order:crm-order-1234567890:" + "x" * 40
    with env.begin() as conn:
        row = enqueue(conn, "kingdee.sales_order", key, {"order_id": 1})
        conn.execute(sa.text("UPDATE outbox SET status = 'dead', last_error = :e WHERE id = :id"),
                     {"e": "kingdee.Save[CRM-SO1]: 客户编码不存在 " * 4, "id": row})
    out = run("dlq", "list")
    assert key in out


def test_a_table_too_wide_for_the_terminal_becomes_blocks_not_cut_cells():
    from rich.console import Console

    columns = [Column("key"), Column("amount", "amount"), Column("note", "extra")]
    rows = [["K" * 70, "12,345,678,901.23", "dropped first"]]
    console = Console(width=60, record=True)
    console.print(fit(columns, rows, 60), crop=False)
    text = console.export_text()
    assert "K" * 70 in text and "12,345,678,901.23" in text
    assert "…" not in text
