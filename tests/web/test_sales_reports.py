"""The sales report pages (funnel, RFM, performance) show exactly what the data says.

Given a sales organisation with a history (``tests.support.sales_world``), every figure a
page shows is compared with the same figure computed here independently: from the raw rows
in Python (funnel, RFM) or by separately written SQL (performance). Then who sees what: a
salesperson their own, a manager their team's (and the pool), finance and IT nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import warnings
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hub.access import Role
from hub.stages import FUNNEL_STAGES, LOST
from hub.web import create_web_app
from hub.web.reports.rfm import SEGMENTS, window_start
from tests.conftest import rows
from tests.support.access import bearer, issue_token
from tests.support.sales_world import SHANGHAI, SalesWorld, build_sales_world
from tests.web.pagescan import Page, scan

ALL = None  # every owner, the pool included


@pytest.fixture
def world(db: Any) -> SalesWorld:
    return build_sales_world(db, customers=60)


@pytest.fixture
def app_client(db: Any, settings: Any) -> Iterator[TestClient]:
    with TestClient(create_web_app(db, settings)) as http:
        yield http


def get(client: TestClient, db: Any, path: str, role: Role = Role.ADMIN, user: int | None = None) -> Page:
    reply = client.get(path, headers=bearer(issue_token(db, role, user_id=user)))
    assert reply.status_code == 200, reply.text[:500]
    return scan(reply.text)


def in_scope(owner: int | None, owners: set[int | None] | None) -> bool:
    return owners is None or owner in owners


# ---------------------------------------------------------------- the funnel, computed from raw rows

def expected_funnel(db: Any, start: dt.date, end: dt.date, owners: set[int | None] | None,
                    region: str | None = None) -> dict[str, Any]:
    lo = dt.datetime.combine(start, dt.time(), SHANGHAI)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), SHANGHAI)
    history: dict[int, list[Any]] = defaultdict(list)
    for h in rows(db, "SELECT subject_id, to_stage, changed_at FROM stage_change WHERE subject_type = 'lead' "
                      "ORDER BY subject_id, changed_at, id"):
        history[h.subject_id].append(h)
    cohort = [lead for lead in rows(db, "SELECT id, stage, owner_id, region, created_at FROM lead")
              if lo <= lead.created_at < hi and in_scope(lead.owner_id, owners)
              and (region is None or lead.region == region)]
    reached = [0] * len(FUNNEL_STAGES)
    lost = 0
    stays: dict[str, list[float]] = defaultdict(list)
    for lead in cohort:
        seen = [h.to_stage for h in history[lead.id]] + [lead.stage]
        top = max((FUNNEL_STAGES.index(s) + 1 for s in seen if s in FUNNEL_STAGES), default=0)
        for k in range(top):
            reached[k] += 1
        lost += LOST in seen
        for here, nxt in zip(history[lead.id], history[lead.id][1:], strict=False):
            stays[here.to_stage].append((nxt.changed_at - here.changed_at).total_seconds() / 86400)
    dwell = [statistics.fmean(stays[s]) if stays[s] and s != FUNNEL_STAGES[-1] else None for s in FUNNEL_STAGES]
    known = [d for d in dwell if d is not None]
    limit = 1.5 * statistics.median(known) if known else None
    return {"reached": reached, "lost": lost, "dwell": dwell,
            "flagged": [d is not None and limit is not None and d > limit for d in dwell]}


def funnel_on_page(page: Page) -> dict[str, Any]:
    dwell = page.all("dwell")
    return {"reached": [int(e.text.replace(",", "")) for e in page.all("reached")],
            "conversion": [e.text for e in page.all("conversion")],
            "dwell": [e.text.split(" ")[0] for e in dwell],
            "flagged": [e.attrs["data-flagged"] == "yes" for e in dwell],
            "lost": int(page.one("lost-count").text.replace(",", ""))}


def check_funnel(page: Page, expected: dict[str, Any]) -> None:
    shown = funnel_on_page(page)
    assert shown["reached"] == expected["reached"]
    assert shown["lost"] == expected["lost"]
    r = expected["reached"]
    assert shown["conversion"] == [f"{r[i + 1] / r[i]:.1%}" if r[i] else "—" for i in range(len(r) - 1)] + ["—"]
    assert shown["dwell"] == ["—" if d is None else f"{d:.1f}" for d in expected["dwell"]]
    assert shown["flagged"] == expected["flagged"]


def test_the_funnel_counts_conversions_and_dwell_equal_the_stage_history(db, world, app_client):
    # given the leads of the last 90 days and their stage history; when admin opens the funnel
    page = get(app_client, db, "/reports/funnel")
    start = world.today - dt.timedelta(days=89)
    expected = expected_funnel(db, start, world.today, ALL)
    # then each stage's count, conversion and dwell are the history's
    check_funnel(page, expected)
    assert expected["reached"][0] == 60 and expected["reached"][-1] > 0 and expected["lost"] > 0
    assert any(d is not None for d in expected["dwell"])


def test_the_funnel_filters_by_owner_region_team_and_period(db, world, app_client):
    start, end = world.today - dt.timedelta(days=40), world.today - dt.timedelta(days=5)
    page = get(app_client, db, f"/reports/funnel?owner={world.alice}&region=上海&from={start}&to={end}")
    check_funnel(page, expected_funnel(db, start, end, {world.alice}, "上海"))
    page = get(app_client, db, "/reports/funnel?team=华东销售部")
    team = expected_funnel(db, world.today - dt.timedelta(days=89), world.today, {world.mia, world.alice, world.bob})
    check_funnel(page, team)
    assert 0 < team["reached"][0] < 60


def test_an_unusually_long_stage_is_flagged_by_the_configured_rule(db, world, settings):
    # given dwell 5 / 15 / 20 / 10 days (the product's example): median 12.5, × 1.5 = 18.75
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM stage_change"))
        conn.execute(sa.text("DELETE FROM task WHERE lead_id IS NOT NULL"))
        conn.execute(sa.text("DELETE FROM lead"))
        at = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        lead = conn.execute(sa.text("INSERT INTO lead (company_name, stage, source_system, external_id, created_at) "
                                    "VALUES ('示例线索', '赢单', 'crm', 'x1', :at) RETURNING id"), {"at": at}).scalar()
        prev = None
        for stage, days in zip(FUNNEL_STAGES, (5, 15, 20, 10, 0), strict=True):
            conn.execute(sa.text("INSERT INTO stage_change (subject_type, subject_id, from_stage, to_stage, "
                                 "changed_at, source, actor) VALUES ('lead', :id, :b, :a, :at, 'crm', 't')"),
                         {"id": lead, "b": prev, "a": stage, "at": at})
            prev, at = stage, at + dt.timedelta(days=days)
    with TestClient(create_web_app(db, settings)) as http:
        page = get(http, db, "/reports/funnel")
    shown = funnel_on_page(page)
    assert shown["dwell"] == ["5.0", "15.0", "20.0", "10.0", "—"]
    assert shown["flagged"] == [False, False, True, False, False]
    strict = settings.model_copy(update={"sales_reports": settings.sales_reports.model_copy(
        update={"dwell_flag_factor": 2.0})})
    with TestClient(create_web_app(db, strict)) as http:
        assert funnel_on_page(get(http, db, "/reports/funnel"))["flagged"] == [False] * 5


# ---------------------------------------------------------------- RFM, computed from raw rows

def expected_rfm(db: Any, today: dt.date, owners: set[int | None] | None, currency: str = "CNY"
                 ) -> dict[str, set[int]]:
    since = window_start(today, 12)
    customers = {c.id: c for c in rows(db, "SELECT id, owner_id FROM customer") if in_scope(c.owner_id, owners)}
    last: dict[int, dt.date] = {}
    freq: dict[int, int] = defaultdict(int)
    for o in rows(db, "SELECT customer_id, order_date FROM sales_order WHERE source_system IN ('kingdee', 'yonyou') "
                      "AND currency = :c", c=currency):
        last[o.customer_id] = max(last.get(o.customer_id, o.order_date), o.order_date)
        freq[o.customer_id] += o.order_date >= since
    money: dict[int, Decimal] = defaultdict(Decimal)
    for r in rows(db, "SELECT customer_id, receipt_date, amount FROM receipt WHERE currency = :c", c=currency):
        if since <= r.receipt_date <= today:
            money[r.customer_id] += r.amount
    ids = [c for c in customers if c in last]
    recency = {c: (today - last[c]).days for c in ids}
    r_th = statistics.median(recency.values())
    f_th = statistics.median(freq[c] for c in ids)
    m_th = statistics.median(money[c] for c in ids)
    segments: dict[str, set[int]] = {name: set() for name in SEGMENTS.values()}
    for c in ids:
        segments[SEGMENTS[(recency[c] <= r_th, freq[c] >= f_th, money[c] >= m_th)]].add(c)
    return segments


def rfm_on_page(client: TestClient, db: Any, role: Role = Role.ADMIN, user: int | None = None
                ) -> dict[str, set[int]]:
    page = get(client, db, "/reports/rfm?currency=CNY", role, user)
    counts = {e.attrs["data-segment"]: e for e in page.all("segment")}
    members = {}
    for name in SEGMENTS.values():
        listing = get(client, db, f"/reports/rfm/customers?segment={name}&currency=CNY", role, user)
        members[name] = {int(e.attrs["data-id"]) for e in listing.all("member")}
        assert int(listing.one("total").text.replace(",", "")) == len(members[name])
        assert name in counts
    shown_counts = [int(e.text.replace(",", "")) for e in page.all("customers")]
    assert shown_counts == [len(members[name]) for name in SEGMENTS.values()]
    return members


def test_rfm_segments_hold_the_customers_the_orders_and_receipts_put_there(db, world, app_client):
    expected = expected_rfm(db, world.today, ALL)
    assert rfm_on_page(app_client, db) == expected
    assert sum(map(len, expected.values())) > 20 and sum(1 for s in expected.values() if s) >= 4


def test_rfm_shows_the_thresholds_and_uses_configured_ones(db, world, settings):
    configured = settings.model_copy(update={"sales_reports": settings.sales_reports.model_copy(
        update={"rfm_recency_days": 30, "rfm_frequency": 2, "rfm_monetary": Decimal("10000")})})
    with TestClient(create_web_app(db, configured)) as http:
        page = get(http, db, "/reports/rfm?currency=CNY")
        assert page.one("threshold-r").text.startswith("≤ 30")
        assert page.one("threshold-f").text.startswith("≥ 2")
        assert page.one("threshold-m").text.startswith("≥ CNY 10,000.00")
        listing = get(http, db, "/reports/rfm/customers?segment=重要价值&currency=CNY")
    since = window_start(world.today, 12)
    valuable = {r.id for r in rows(db, """
        SELECT c.id FROM customer c
        WHERE (SELECT :today - max(order_date) FROM sales_order o WHERE o.customer_id = c.id
               AND o.source_system IN ('kingdee', 'yonyou') AND o.currency = 'CNY') <= 30
          AND (SELECT count(*) FROM sales_order o WHERE o.customer_id = c.id AND o.source_system IN ('kingdee', 'yonyou')
               AND o.currency = 'CNY' AND o.order_date >= :since) >= 2
          AND (SELECT COALESCE(sum(amount), 0) FROM receipt r WHERE r.customer_id = c.id AND r.currency = 'CNY'
               AND r.receipt_date BETWEEN :since AND :today) >= 10000""", today=world.today, since=since)}
    assert {int(e.attrs["data-id"]) for e in listing.all("member")} == valuable and valuable
    # each customer links to their profile
    assert {f"/customers/{i}" for i in valuable} <= set(listing.links)


# ---------------------------------------------------------------- performance, by separate SQL

def expected_performance(db: Any, today: dt.date) -> dict[int | None, dict[str, str]]:
    first = today.replace(day=1)
    month = {"first": first, "after": (first + dt.timedelta(days=32)).replace(day=1)}
    out: dict[int | None, dict[str, Any]] = defaultdict(lambda: defaultdict(dict))

    def money_text(pairs: dict[str, Decimal]) -> str:
        return " · ".join(f"{c} {a:,.2f}" for c, a in sorted(pairs.items())) or "—"

    orders: dict[int | None, dict[str, Decimal]] = defaultdict(dict)
    for r in rows(db, "SELECT owner_id, currency, sum(total_amount) AS s FROM sales_order WHERE status <> 'draft' "
                      "AND status <> 'cancelled' AND order_date >= :first AND order_date < :after GROUP BY 1, 2",
                  **month):
        orders[r.owner_id][r.currency] = r.s
    receipts: dict[int | None, dict[str, Decimal]] = defaultdict(dict)
    for r in rows(db, "SELECT c.owner_id, r.currency, sum(r.amount) AS s FROM receipt r, customer c "
                      "WHERE c.id = r.customer_id AND r.receipt_date >= :first AND r.receipt_date < :after "
                      "GROUP BY 1, 2", **month):
        receipts[r.owner_id][r.currency] = r.s
    local = "(x AT TIME ZONE 'Asia/Shanghai')"
    contracts = {r.owner_id: r.n for r in rows(db, "SELECT owner_id, count(*) AS n FROM contract WHERE status = "
                 f"'signed' AND {local.replace('x', 'signed_at')}::date >= :first AND "
                 f"{local.replace('x', 'signed_at')}::date < :after GROUP BY 1", **month)}
    followups = {r.user_id: r.n for r in rows(db, "SELECT user_id, count(*) AS n FROM interaction WHERE kind <> "
                 f"'marketing' AND {local.replace('x', 'occurred_at')}::date >= :first AND "
                 f"{local.replace('x', 'occurred_at')}::date < :after GROUP BY 1", **month)}
    done = {r.assignee_id: (r.n, r.chat) for r in rows(db, "SELECT assignee_id, count(*) AS n, count(*) FILTER "
            "(WHERE completed_via IN ('wecom', 'dingtalk')) AS chat FROM task WHERE status = 'done' AND "
            f"{local.replace('x', 'completed_at')}::date >= :first AND {local.replace('x', 'completed_at')}::date "
            "< :after GROUP BY 1", **month)}
    reminded = {r.assignee_id: (r.n, r.done) for r in rows(db, "SELECT assignee_id, count(*) AS n, count(*) FILTER "
                "(WHERE status = 'done') AS done FROM task WHERE push_state::text LIKE '%\"state\": \"sent\"%' AND "
                f"{local.replace('x', 'due_at')}::date >= :first AND {local.replace('x', 'due_at')}::date < :after "
                "GROUP BY 1", **month)}
    for owner in set(orders) | set(receipts) | set(contracts) | set(followups) | set(done) | set(reminded):
        out[owner] = {"order-amount": money_text(orders.get(owner, {})),
                      "receipts": money_text(receipts.get(owner, {})),
                      "contracts": str(contracts.get(owner, 0)), "followups": str(followups.get(owner, 0)),
                      "tasks-done": str(done.get(owner, (0, 0))[0]),
                      "reminders-acted": "{1}/{0}".format(*reminded.get(owner, (0, 0)))}
    return out


def performance_on_page(page: Page) -> dict[int | None, dict[str, str]]:
    keys = ("order-amount", "receipts", "contracts", "followups", "tasks-done", "reminders-acted", "target",
            "attainment")
    owners = page.all("owner")
    shown: dict[int | None, dict[str, str]] = {}
    columns = {k: page.all(k) for k in keys}
    for i, row in enumerate(owners):
        owner = int(row.attrs["data-id"]) if row.attrs["data-id"] not in ("", "None") else None
        shown[owner] = {k: columns[k][i].text.split(" · CNY")[0] if k == "contracts" else columns[k][i].text
                        for k in keys}
        shown[owner]["contracts"] = shown[owner]["contracts"].split(" ")[0]
    return shown


def test_performance_per_owner_equals_the_months_orders_receipts_activity_and_target(db, world, app_client):
    first = world.today.replace(day=1)
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO sales_target (owner_id, period_start, currency, amount, set_by) VALUES "
                             "(:o, :p, 'CNY', 100000, 'test'), (:o, :p, 'USD', 5000, 'test')"),
                     {"o": world.alice, "p": first})
    shown = performance_on_page(get(app_client, db, "/reports/performance"))
    expected = expected_performance(db, world.today)
    assert set(shown) == set(expected)
    for owner, figures in expected.items():
        assert {k: shown[owner][k] for k in figures} == figures, owner
    alice_cny = Decimal(rows(db, "SELECT COALESCE(sum(total_amount), 0) AS s FROM sales_order WHERE owner_id = :o "
                                 "AND currency = 'CNY' AND status NOT IN ('draft', 'cancelled') AND order_date >= :f",
                             o=world.alice, f=first)[0].s)
    assert shown[world.alice]["target"] == "CNY 100,000.00 · USD 5,000.00"
    assert shown[world.alice]["attainment"].startswith(f"CNY {float(alice_cny / 100000):.1%}")


# ---------------------------------------------------------------- who sees what

def test_a_salesperson_sees_only_their_own_and_a_manager_their_teams(db, world, app_client):
    start = world.today - dt.timedelta(days=89)
    own = get(app_client, db, "/reports/funnel", Role.SALES, world.alice)
    check_funnel(own, expected_funnel(db, start, world.today, {world.alice}))
    # asking for bob's does not show bob's: the scope still applies
    other = get(app_client, db, f"/reports/funnel?owner={world.bob}", Role.SALES, world.alice)
    assert funnel_on_page(other)["reached"] == [0] * len(FUNNEL_STAGES)
    team = get(app_client, db, "/reports/funnel", Role.MANAGER, world.mia)
    check_funnel(team, expected_funnel(db, start, world.today, {world.mia, world.alice, world.bob, None}))
    assert rfm_on_page(app_client, db, Role.SALES, world.alice) == expected_rfm(db, world.today, {world.alice})
    perf = performance_on_page(get(app_client, db, "/reports/performance", Role.MANAGER, world.mia))
    assert set(perf) <= {world.mia, world.alice, world.bob, None} and world.carol not in perf
    assert set(performance_on_page(get(app_client, db, "/reports/performance", Role.SALES, world.alice))) == {
        world.alice}


@pytest.mark.parametrize("role", [Role.FINANCE, Role.IT])
def test_finance_and_it_may_not_open_the_sales_reports(db, world, app_client, role):
    token = issue_token(db, role)
    for path in ("/reports/funnel", "/reports/rfm", "/reports/rfm/customers?segment=重要价值", "/reports/performance"):
        assert app_client.get(path, headers=bearer(token)).status_code == 403, path


def test_bad_filters_are_a_400_naming_the_parameter(db, world, app_client):
    token = bearer(issue_token(db, Role.ADMIN))
    for path, word in (("/reports/funnel?owner=abc", "owner"), ("/reports/funnel?from=2026-13-01", "from"),
                       ("/reports/funnel?from=2026-11-02&to=2026-11-01", "after"),
                       ("/reports/funnel?subject=order", "subject"), ("/reports/performance?month=11-2026", "month"),
                       ("/reports/rfm/customers?segment=最好", "segment"), ("/reports/rfm?currency=C1", "currency")):
        reply = app_client.get(path, headers=token)
        assert reply.status_code == 400 and word in reply.text, path


def test_the_pages_speak_english_when_the_setting_says_so(db, world, settings):
    english = settings.model_copy(update={"web": settings.web.model_copy(update={"language": "en"})})
    with TestClient(create_web_app(db, english)) as http:
        for path, heading in (("/reports/funnel", "Sales funnel"), ("/reports/rfm", "Customer value (RFM)"),
                              ("/reports/performance", "Sales performance")):
            page = get(http, db, path)
            assert page.headings[0].startswith(heading), page.headings
            assert "Filter" in page.headings


def test_in_english_the_header_and_footer_are_english_too_and_each_report_says_as_of_when(db, world, settings):
    english = settings.model_copy(update={"web": settings.web.model_copy(update={"language": "en"})})
    with TestClient(create_web_app(db, english)) as http:
        for path in ("/reports", "/reports/funnel", "/reports/rfm", "/reports/rfm/customers?segment=重要价值",
                     "/reports/performance"):
            html = http.get(path, headers=bearer(issue_token(db, Role.ADMIN))).text
            header = html[html.index('<header class="top">'):html.index("</header>")]
            footer = html[html.index("<footer>"):html.index("</footer>")]
            assert "Customer 360" in header and "Sign out" in header and "Search" in header, path
            assert "Reports" in header and "Asia/Shanghai" in footer, path
            # no Chinese left in the header and footer (the signed-in person's name aside)
            named = re.sub(r'data-k="whoami"[^>]*>[^<]*· Sign out<', "", header)
            assert not re.search(r"[\u4e00-\u9fff]", named + footer), (path, header)
            assert '<html lang="en">' in html
            if path != "/reports":
                assert re.search(r'Data as of <span data-k="as-of">\d{4}-\d\d-\d\d \d\d:\d\d</span>', html), path


def test_a_segments_customer_list_pages_forward_and_back_and_misses_no_one(db, world, app_client, monkeypatch):
    from hub.web.reports import rfm

    monkeypatch.setattr(rfm, "PAGE_SIZE", 2)  # 60 customers: a few pages of two
    expected = expected_rfm(db, world.today, ALL)
    name = max(expected, key=lambda n: len(expected[n]))
    assert len(expected[name]) > 5
    seen: list[int] = []
    page = 1
    while True:
        reply = app_client.get(f"/reports/rfm/customers?segment={name}&currency=CNY&page={page}",
                               headers=bearer(issue_token(db, Role.ADMIN)))
        listing = scan(reply.text)
        seen += [int(e.attrs["data-id"]) for e in listing.all("member")]
        assert (f"page={page - 1}" in reply.text) == (page > 1)  # a link back from the second page on
        if f"page={page + 1}" not in reply.text:
            break
        page += 1
    assert len(seen) == len(set(seen)) and set(seen) == expected[name]
