"""The receivables report: every figure equals SQL written here independently, the exports
carry the same figures (CSV with BOM, formulas neutralised; XLSX), exports are audited, only
finance (and admin) may open it, and the page costs a fixed number of SQL statements."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hub.access import Role
from hub.web import create_web_app
from hub.web.formatting import Clock, money
from tests.conftest import rows, scalar
from tests.support.access import bearer, issue_token
from tests.support.receivables import build_ledger

BUCKETS = ("not_due", "1_30", "31_60", "61_90", "over_90")
MAX_STATEMENTS = 10  # per page view, whatever the number of customers


@pytest.fixture
def report(db, settings):
    today = Clock(settings.timezone).today()
    build_ledger(db, 40, today)
    client = TestClient(create_web_app(db, settings))
    return client, today


def cells(html: str, key: str) -> list[str]:
    return re.findall(rf'data-k="{key}"[^>]*>([^<]*)<', html)


def expected_aging(db, today: dt.date) -> dict[str, dict[str, Decimal]]:
    """Per currency and bucket, from each bill's days past due (a CASE, not the app's FILTERs)."""
    found: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(BUCKETS, Decimal("0.00")))
    for r in rows(db, """
        SELECT currency, CASE WHEN :d - due_date <= 0 THEN 'not_due' WHEN :d - due_date <= 30 THEN '1_30'
                              WHEN :d - due_date <= 60 THEN '31_60' WHEN :d - due_date <= 90 THEN '61_90'
                              ELSE 'over_90' END AS bucket, open_amount
        FROM receivable WHERE open_amount > 0""", d=today):
        found[r.currency][r.bucket] += r.open_amount
    return found


def test_aging_per_currency_and_bucket_equals_an_independent_query(report, db):
    client, today = report
    html = client.get("/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    expected = expected_aging(db, today)
    assert set(expected) == {"CNY", "USD"}
    for currency, buckets in expected.items():
        row = re.search(rf'data-k="aging" data-currency="{currency}">(.*?)</tr>', html, re.S)
        assert row, currency
        shown = dict(re.findall(r'data-bucket="([^"]+)">([^<]*)<', row.group(1)))
        assert shown == {b: money(v) for b, v in buckets.items()}, currency
        assert cells(row.group(1), "open") == [money(sum(buckets.values()))]
    # currencies are never added together: no total across them anywhere on the page
    assert money(sum(sum(b.values()) for b in expected.values())) not in html


def test_top_overdue_customers_per_currency_link_to_their_profiles(report, db):
    client, today = report
    html = client.get("/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    for currency in ("CNY", "USD"):
        expected = [(r.customer_id, money(r.overdue)) for r in rows(db, """
            SELECT customer_id, sum(open_amount) AS overdue FROM receivable
            WHERE currency = :c AND due_date < :d AND open_amount > 0
            GROUP BY customer_id ORDER BY overdue DESC, customer_id LIMIT 10""", c=currency, d=today)]
        shown = re.findall(rf'data-k="top-overdue" data-customer="(\d+)" data-currency="{currency}">.*?'
                           r'href="/customers/(\d+)".*?data-k="overdue">([^<]*)<', html, re.S)
        assert [(int(c), amount) for c, link, amount in shown] == expected
        assert all(c == link for c, link, _ in shown)


def test_customers_over_their_credit_limit_are_exactly_those_the_ledger_says(report, db):
    client, _ = report
    html = client.get("/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    expected = {r.id for r in rows(db, """
        SELECT c.id FROM customer c WHERE c.credit_limit IS NOT NULL AND c.credit_limit <
            (SELECT COALESCE(sum(open_amount), 0) FROM receivable r WHERE r.customer_id = c.id
             AND r.currency = c.currency)""")}
    assert expected
    assert {int(i) for i in re.findall(r'data-k="over-limit" data-customer="(\d+)"', html)} == expected


def test_dso_of_last_month_equals_a_hand_computation(report, db):
    client, today = report
    html = client.get("/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    month_end = today.replace(day=1) - dt.timedelta(days=1)
    bills = rows(db, "SELECT bill_date, amount FROM receivable WHERE currency = 'CNY'")
    receipts = rows(db, "SELECT receipt_date, amount FROM receipt WHERE currency = 'CNY'")
    open_at_end = sum(b.amount for b in bills if b.bill_date <= month_end) - sum(
        r.amount for r in receipts if r.receipt_date <= month_end)
    sales = sum(b.amount for b in bills if month_end - dt.timedelta(days=90) < b.bill_date <= month_end)
    expected = (open_at_end / sales * 90).quantize(Decimal("0.1"))
    row = re.search(rf'data-k="dso" data-currency="CNY" data-month="{month_end:%Y-%m}">(.*?)</tr>', html, re.S)
    assert row and cells(row.group(1), "dso-days") == [str(expected)]
    assert "÷" in html and "× 90" in html  # the formula is explained on the page


def test_csv_export_is_excel_ready_neutralises_formulas_and_is_audited(report, db):
    client, today = report
    reply = client.get("/reports/receivables.csv", params={"table": "top_overdue"},
                       headers=bearer(issue_token(db, Role.FINANCE)))
    assert reply.status_code == 200 and reply.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))
    header, body = table[0], table[1:]
    assert header[1] == "客户"
    by_customer = {(int(r[0]), r[2]): (r[1], Decimal(r[3])) for r in body}
    expected = {(r.customer_id, r.currency): (r.name, r.overdue) for r in rows(db, """
        SELECT * FROM (SELECT r.customer_id, c.name, r.currency, sum(r.open_amount) AS overdue,
                              rank() OVER (PARTITION BY r.currency ORDER BY sum(r.open_amount) DESC, r.customer_id) AS k
                       FROM receivable r JOIN customer c ON c.id = r.customer_id
                       WHERE r.due_date < :d AND r.open_amount > 0 GROUP BY r.customer_id, c.name, r.currency) x
        WHERE k <= 10""", d=today)}
    assert {k: v[1] for k, v in by_customer.items()} == {k: v[1] for k, v in expected.items()}
    for key, (name, _) in by_customer.items():
        raw = expected[key][0]
        assert name == ("'" + raw if raw.startswith("=") else raw)
    assert any(name.startswith("'=") for name, _ in by_customer.values())
    audit = rows(db, "SELECT actor, operation, detail FROM audit_log WHERE operation LIKE 'export:%'")
    assert [(a.operation, a.detail["table"], a.detail["rows"]) for a in audit] == [
        ("export:receivables:csv", "top_overdue", len(body))]
    assert audit[0].actor.startswith("web:token:")


def test_xlsx_export_holds_every_table_and_never_a_formula(report, db):
    client, today = report
    reply = client.get("/reports/receivables.xlsx", headers=bearer(issue_token(db, Role.FINANCE)))
    assert reply.status_code == 200
    book = load_workbook(io.BytesIO(reply.content))
    assert len(book.sheetnames) == 4
    aging = {row[0]: row for row in book[book.sheetnames[0]].iter_rows(min_row=2, values_only=True)}
    for currency, buckets in expected_aging(db, today).items():
        assert [Decimal(str(v)) for v in aging[currency][3:8]] == [buckets[b] for b in BUCKETS]
    for sheet in book:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'export:receivables:xlsx'") == 1


@pytest.mark.parametrize("role", [Role.SALES, Role.MANAGER, Role.IT, Role.CRM])
def test_other_roles_may_not_open_the_report_or_its_exports(report, db, role):
    client, _ = report
    headers = bearer(issue_token(db, role))
    for path in ("/reports/receivables", "/reports/receivables.csv", "/reports/receivables.xlsx"):
        assert client.get(path, headers=headers).status_code == 403, path
    assert "/reports/receivables" not in client.get("/reports", headers=headers).text
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation LIKE 'export:%'") == 0


def test_english_labels_by_setting(db, settings):
    build_ledger(db, 5, Clock(settings.timezone).today())
    english = settings.model_copy(update={"web": settings.web.model_copy(update={"language": "en"})})
    html = TestClient(create_web_app(db, english)).get(
        "/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    assert "Aging by bucket (per currency)" in html and "账龄分布" not in html


@contextmanager
def counted(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("customers", [50, 500])
def test_the_report_costs_a_fixed_number_of_statements(db, settings, customers):
    build_ledger(db, customers, Clock(settings.timezone).today())
    client = TestClient(create_web_app(db, settings))
    headers = bearer(issue_token(db, Role.FINANCE))
    for path in ("/reports/receivables", "/reports/receivables.csv?table=aging", "/reports/receivables.xlsx"):
        with counted(db.engine) as statements:
            assert client.get(path, headers=headers).status_code == 200
        assert len(statements) <= MAX_STATEMENTS, (path, customers, len(statements))


# ---------------------------------------------------------------- the summary follows the syncs

def aging_shown(client: TestClient, headers: dict[str, str], currency: str) -> tuple[str, dict[str, str]]:
    """(open amount, bucket → amount) of one currency's aging row on the page."""
    html = client.get("/reports/receivables", headers=headers).text
    row = re.search(rf'data-k="aging" data-currency="{currency}">(.*?)</tr>', html, re.S)
    assert row, currency
    return cells(row.group(1), "open")[0], dict(re.findall(r'data-bucket="([^"]+)">([^<]*)<', row.group(1)))


def test_a_new_kingdee_sync_shows_on_the_report_the_summary_is_rebuilt_with_the_data(db, settings):
    import hub.rules  # noqa: F401  (the rules register the rebuild after a ledger sync)
    from hub.runtime import HubRuntime

    runtime = HubRuntime(settings, db, actor="test")
    try:
        # given bills synced from the Kingdee sandbox: the report shows what they say, as of today
        runtime.sandbox("kingdee", scale=0.01)
        runtime.sync("kingdee")
        today = Clock(settings.timezone).today()
        client = TestClient(create_web_app(db, settings))
        headers = bearer(issue_token(db, Role.FINANCE))
        expected = expected_aging(db, today)
        currency = sorted(expected)[0]
        assert aging_shown(client, headers, currency) == (money(sum(expected[currency].values())), {
            b: money(v) for b, v in expected[currency].items()})
        assert f'data-k="as-of">{today.isoformat()}<' in client.get("/reports/receivables", headers=headers).text
        # when finance books a payment of 100.00 on an open bill in Kingdee, and the next sync runs
        state = runtime.sandbox("kingdee").app.state.kingdee.data
        held = {r.external_id for r in rows(db, "SELECT external_id FROM receivable WHERE currency = :c "
                                                "AND open_amount > 100", c=currency)}
        doc = next(d for d in state.table("AR_receivable").docs.values() if d["FBillNo"] in held)
        with state.lock:
            total, open_now = Decimal(str(doc["FALLAMOUNTFOR"])), Decimal(str(doc["FNOTWRITTENOFFAMOUNTFOR"]))
            doc["FNOTWRITTENOFFAMOUNTFOR"] = type(doc["FNOTWRITTENOFFAMOUNTFOR"])(open_now - Decimal("100.00"))
            doc["FWRITTENOFFAMOUNTFOR"] = type(doc["FNOTWRITTENOFFAMOUNTFOR"])(total - open_now + Decimal("100.00"))
            doc["FModifyDate"] = state.now()
            state.version += 1
        before = sum(expected[currency].values())
        assert runtime.sync("kingdee", "receivables")[0].counts.updated == 1
    finally:
        runtime.close()
    # then the page shows the open amount 100.00 lower, in the bucket the database says
    after = expected_aging(db, today)
    assert sum(after[currency].values()) == before - Decimal("100.00")
    assert aging_shown(client, headers, currency) == (money(before - Decimal("100.00")), {
        b: money(v) for b, v in after[currency].items()})


def test_without_a_summary_the_page_says_so_instead_of_showing_zeros(db, settings):
    html = TestClient(create_web_app(db, settings)).get(
        "/reports/receivables", headers=bearer(issue_token(db, Role.FINANCE))).text
    assert "汇总尚未生成" in html and 'data-k="aging"' not in html


def test_top_overdue_and_over_limit_lists_page_instead_of_stopping_at_the_cap(db, settings):
    # given more overdue customers than a page holds (10 per currency) and more over their limit (50)
    today = Clock(settings.timezone).today()
    build_ledger(db, 160, today)
    client = TestClient(create_web_app(db, settings))
    headers = bearer(issue_token(db, Role.FINANCE))
    expected = [r.customer_id for r in rows(db, """
        SELECT customer_id FROM receivable WHERE currency = 'CNY' AND due_date < :d AND open_amount > 0
        GROUP BY customer_id ORDER BY sum(open_amount) DESC, customer_id""", d=today)]
    over = [r.id for r in rows(db, """
        SELECT c.id FROM customer c JOIN receivable r ON r.customer_id = c.id AND r.currency = c.currency
        WHERE c.credit_limit IS NOT NULL AND r.open_amount > 0 GROUP BY c.id
        HAVING sum(r.open_amount) > c.credit_limit ORDER BY c.currency, sum(r.open_amount) - c.credit_limit DESC, c.id""")]
    assert len(expected) > 20 and len(over) > 50
    # when finance follows the next links to the end
    shown_top: list[int] = []
    shown_over: list[int] = []
    page = 1
    while True:
        html = client.get(f"/reports/receivables?top_page={page}&over_page={page}", headers=headers).text
        shown_top += [int(c) for c in re.findall(r'data-k="top-overdue" data-customer="(\d+)" data-currency="CNY"', html)]
        shown_over += [int(c) for c in re.findall(r'data-k="over-limit" data-customer="(\d+)"', html)]
        if page > 1:
            assert f"top_page={page - 1}" in html  # and back
        if f"top_page={page + 1}" not in html and f"over_page={page + 1}" not in html:
            break
        page += 1
    # then every customer shows, once, in the report's order
    assert shown_top == expected and shown_over == over
