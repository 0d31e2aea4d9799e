"""Sales performance (销售业绩) for one month: per salesperson and per team (department),
orders and their amounts against the month's targets, receipts (回款额), contracts signed,
follow-up activity, and adoption of the chat reminders.

What is counted (also written on the page), per currency (amounts in different currencies
are never added: there is no rate table):

- orders: ``sales_order`` rows of the owner dated in the month, drafts and cancelled left out
  (a CRM order that went to the ERP is one row: the read-back lands on it);
- receipts: ``receipt`` rows dated in the month, credited to the customer's current owner;
- contracts: ``contract`` rows signed (status signed or closed) in the month;
- targets: ``sales_target`` of the owner (or the department) for the month (``hub targets set``);
- follow-ups: the owner's interactions in the month (marketing touchpoints left out);
- tasks done, and of them done in a chat platform (``task.completed_via``: WeCom/DingTalk);
- reminders acted on: of the owner's tasks due in the month with a reminder sent
  (``push_state`` entry in state ``sent``), the share done.

Months and times are the hub's timezone's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Connection

from hub.access import Capability, Principal, Role
from hub.access.secrets import same
from hub.registry import chat_systems
from hub.rules.targets import TargetError, parse_target_amount, parse_target_month, set_target
from hub.web import charts
from hub.web.auth import SESSION_COOKIE, require
from hub.web.reports.common import (
    OWNER_SCOPE,
    Money,
    choices,
    month_bounds,
    parse_filters,
    period_bounds,
    scope_params,
)

_MONEY = """
SELECT 'order' AS k, o.owner_id, NULL AS team, o.currency, count(*) AS n, sum(o.total_amount) AS amount
FROM sales_order o
WHERE o.order_date >= :first AND o.order_date < :after AND o.status NOT IN ('draft', 'cancelled') AND {o}
GROUP BY o.owner_id, o.currency
UNION ALL
SELECT 'receipt', c.owner_id, NULL, r.currency, count(*), sum(r.amount)
FROM receipt r JOIN customer c ON c.id = r.customer_id
WHERE r.receipt_date >= :first AND r.receipt_date < :after AND {c}
GROUP BY c.owner_id, r.currency
UNION ALL
SELECT 'contract', k.owner_id, NULL, k.currency, count(*), sum(k.amount)
FROM contract k
WHERE k.status IN ('signed', 'closed') AND k.signed_at >= :lo AND k.signed_at < :hi AND {k}
GROUP BY k.owner_id, k.currency
UNION ALL
SELECT 'target', t.owner_id, t.department, t.currency, 0, t.amount
FROM sales_target t
WHERE t.period_start = :first AND ((t.owner_id IS NOT NULL AND {t})
      OR (t.department IS NOT NULL AND t.department IN (SELECT u.department FROM internal_user u WHERE {u})))
"""

_ACTIVITY = """
SELECT 'followup' AS k, i.user_id AS owner_id, count(*) AS a, 0 AS b
FROM interaction i
WHERE i.occurred_at >= :lo AND i.occurred_at < :hi AND i.kind <> 'marketing' AND {i}
GROUP BY i.user_id
UNION ALL
SELECT 'done', t.assignee_id, count(*), count(*) FILTER (WHERE t.completed_via = ANY(CAST(:chats AS text[])))
FROM task t
WHERE t.status = 'done' AND t.completed_at >= :lo AND t.completed_at < :hi AND {t}
GROUP BY t.assignee_id
UNION ALL
SELECT 'reminded', t.assignee_id, count(*), count(*) FILTER (WHERE t.status = 'done')
FROM task t
WHERE t.due_at >= :lo AND t.due_at < :hi AND jsonb_path_exists(t.push_state, '$.*.*.state ? (@ == "sent")')
      AND {t}
GROUP BY t.assignee_id
"""


@dataclass
class Performance:
    """One salesperson's (or team's) month."""

    name: str
    owner_id: int | None = None
    team: str | None = None
    orders: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # currency → count
    order_amount: Money = field(default_factory=Money)
    targets: Money = field(default_factory=Money)
    receipts: Money = field(default_factory=Money)
    contracts: int = 0
    contract_amount: Money = field(default_factory=Money)
    followups: int = 0
    tasks_done: int = 0
    done_in_chat: int = 0
    reminded: int = 0
    reminded_done: int = 0

    def attainment(self) -> dict[str, float | None]:
        """Order amount / target per currency that has a target."""
        return {cur: (float(self.order_amount.by_currency.get(cur, Decimal(0)) / target) if target else None)
                for cur, target in sorted(self.targets.by_currency.items())}

    def absorb(self, other: Performance) -> None:
        """Add a member's figures to this team's (targets stay the team's own)."""
        for cur, n in other.orders.items():
            self.orders[cur] += n
        for mine, theirs in ((self.order_amount, other.order_amount), (self.receipts, other.receipts),
                             (self.contract_amount, other.contract_amount)):
            for cur, amount in theirs.by_currency.items():
                mine.add(cur, amount)
        self.contracts += other.contracts
        self.followups += other.followups
        self.tasks_done += other.tasks_done
        self.done_in_chat += other.done_in_chat
        self.reminded += other.reminded
        self.reminded_done += other.reminded_done


@dataclass(frozen=True)
class Report:
    """The month's rows per owner and per team."""

    owners: list[Performance]
    teams: list[Performance]


def performance_figures(conn: Connection, params: dict[str, Any], month: dt.date, timezone: str,
                        unassigned: str) -> Report:
    """The month's figures (module doc): three statements whatever the number of people."""
    first, after = month_bounds(month)
    lo, hi = period_bounds(first, after - dt.timedelta(days=1), timezone)
    scope = {a: OWNER_SCOPE.format(col=f"{a}.owner_id") for a in ("o", "c", "k")}
    bind = {**params, "first": first, "after": after, "lo": lo, "hi": hi}
    money_rows = conn.execute(sa.text(_MONEY.format(**scope, t=OWNER_SCOPE.format(col="t.owner_id"),
                                                    u=OWNER_SCOPE.format(col="u.id"))), bind).all()
    activity = conn.execute(sa.text(_ACTIVITY.format(i=OWNER_SCOPE.format(col="i.user_id"),
                                                     t=OWNER_SCOPE.format(col="t.assignee_id"))),
                            {**bind, "chats": chat_systems()}).all()
    ids = {r.owner_id for r in (*money_rows, *activity) if r.owner_id is not None}
    people = {r.id: r for r in conn.execute(sa.text(
        "SELECT id, name, department FROM internal_user WHERE id = ANY(:ids)"), {"ids": sorted(ids)})}
    owners: dict[int | None, Performance] = {}
    teams: dict[str, Performance] = {}

    def of(owner_id: int | None) -> Performance:
        if owner_id not in owners:
            person = people.get(owner_id) if owner_id is not None else None
            owners[owner_id] = Performance(person.name if person else unassigned, owner_id,
                                           person.department if person else None)
        return owners[owner_id]

    for r in money_rows:
        if r.k == "target" and r.team is not None:
            teams.setdefault(r.team, Performance(r.team, team=r.team)).targets.add(r.currency, r.amount)
            continue
        row = of(r.owner_id)
        if r.k == "order":
            row.orders[r.currency] += r.n
            row.order_amount.add(r.currency, r.amount)
        elif r.k == "receipt":
            row.receipts.add(r.currency, r.amount)
        elif r.k == "contract":
            row.contracts += r.n
            row.contract_amount.add(r.currency, r.amount)
        else:
            row.targets.add(r.currency, r.amount)
    for r in activity:
        row = of(r.owner_id)
        if r.k == "followup":
            row.followups += r.a
        elif r.k == "done":
            row.tasks_done, row.done_in_chat = r.a, r.b
        else:
            row.reminded, row.reminded_done = r.a, r.b
    for row in owners.values():
        if row.team is not None:
            teams.setdefault(row.team, Performance(row.team, team=row.team)).absorb(row)
    ordered = sorted(owners.values(), key=lambda p: (p.owner_id is None, p.name))
    return Report(ordered, sorted(teams.values(), key=lambda p: p.name))


def parse_month(text: str, today: dt.date) -> dt.date:
    """``2026-11`` → 2026-11-01; empty: this month; malformed: 400."""
    if not text.strip():
        return today.replace(day=1)
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise HTTPException(400, f"month: not a month (YYYY-MM): {text[:20]!r}") from None


def add_routes(router: APIRouter, ctx: Any) -> None:
    """``GET /reports/performance`` and ``POST /reports/performance/targets`` (the target form)."""
    from hub.web.signin import session_csrf  # the sign-in module owns the session's CSRF token

    t = ctx.labels

    @router.get("/reports/performance", include_in_schema=False, response_class=HTMLResponse)
    def performance_page(request: Request, principal: Principal = require(Capability.VIEW_SALES_REPORTS),
                         owner: str = Query("", max_length=20), team: str = Query("", max_length=200),
                         month: str = Query("", max_length=10)) -> HTMLResponse:
        """The month's performance of the people the principal sees."""
        filters = parse_filters(owner, team, "")
        first = parse_month(month, ctx.clock.today())
        now = dt.datetime.now(dt.UTC)  # the figures are read live: "as of" is now
        with ctx.reading() as conn:
            params = scope_params(conn, principal, filters)
            report = performance_figures(conn, params, first, ctx.settings.timezone, t("unassigned"))
            options = choices(conn, params, "customer")
        # one chart per currency would crowd a phone: the chart shows the commonest currency
        currencies = [cur for p in report.owners for cur in p.order_amount.by_currency]
        main = max(sorted(set(currencies)), key=currencies.count) if currencies else None
        bars = [charts.Bar(p.name, float(p.order_amount.by_currency[main]),
                           text=f"{main} {p.order_amount.by_currency[main]:,.2f}")
                for p in report.owners if main in p.order_amount.by_currency]
        chart = charts.bar_chart(bars, title=f"{t('order_amount')} ({main or '—'})")
        cookie = request.cookies.get(SESSION_COOKIE)
        return ctx.page("report_performance.html", now=now, title=t("performance"), principal=principal, t=t,
                        report=report, chart=chart, filters=filters, options=options, month=first,
                        may_set=principal.can(Capability.SET_TARGETS),
                        # a salesperson's "team" row would be their own figures under the team's name
                        show_teams=principal.role is not Role.SALES,
                        csrf=session_csrf(cookie) if cookie else "")

    @router.post("/reports/performance/targets", include_in_schema=False, response_model=None)
    async def set_target_form(request: Request, principal: Principal = require(Capability.SET_TARGETS)
                              ) -> RedirectResponse:
        """The form's target: set one month's target of a salesperson or team (audited), back to the page.
        A browser's post carries the session's CSRF token; a bearer token's needs none."""
        body = await request.body()
        if len(body) > 4096:
            raise HTTPException(413, "form too large")
        try:
            fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=10).items()}
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "form: not url-encoded UTF-8") from None
        # as checked_form: the credential the principal was signed in with decides, not whether
        # some Authorization header came along beside a session cookie
        cookie = request.cookies.get(SESSION_COOKIE)
        if principal.via != "token" and not (cookie and same(session_csrf(cookie), fields.get("csrf", ""))):
            raise HTTPException(403, "form: missing or wrong CSRF token (reload the page)")
        owner_text = fields.get("owner", "").strip()
        if owner_text and not (owner_text.isascii() and owner_text.isdigit() and len(owner_text) <= 18):
            raise HTTPException(400, f"owner: not a user id: {owner_text[:20]!r}")
        try:
            month = parse_target_month(fields.get("month", ""))
            with ctx.db.engine.begin() as conn:
                set_target(conn, owner_id=int(owner_text) if owner_text else None,
                           department=fields.get("team") or None, month=month,
                           currency=fields.get("currency", "CNY"),
                           amount=parse_target_amount(fields.get("amount", "")), actor=principal.actor)
        except TargetError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(f"/reports/performance?month={month:%Y-%m}", status_code=303)
