"""`hub profile`: a customer's 360° profile in the terminal (the demo prints it too)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from hub.cli.base import FAILED, app, console, failures_as_one_line, print_json, runtime
from hub.cli.tables import Column, money, print_table
from hub.errors import NotFoundError

CANDIDATE_COLUMNS = (Column("id"), Column("name"), Column("credit code"), Column("matched by", "extra"))


@app.command()
def profile(
    customer: Annotated[str, typer.Argument(
        help="Id, unified social credit code, SYSTEM:EXTERNAL_ID (e.g. kingdee:CUST01338), an external id, "
             "a contact's full mobile or e-mail, or part of the name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a customer's 360° profile; an ambiguous reference lists the candidates (exit 1)."""
    from hub.vault.display import find_customers, profile_for_display

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        hits = find_customers(conn, customer, limit=20)
        exact = [h for h in hits if h["matched_by"] != "name"]
        matches = exact or hits
        chosen = pick(customer, matches)
        if chosen is None:
            if not matches:
                raise NotFoundError(f"no customer matches {customer!r}")
            print_candidates(customer, matches, as_json)
            raise typer.Exit(FAILED)
        found = profile_for_display(conn, chosen)
        if found is None:
            raise NotFoundError(f"no customer matches {customer!r}")
    if as_json:
        console.print_json(found.model_dump_json())
    else:
        print_profile(found)


def pick(ref: str, matches: list[dict[str, Any]]) -> int | None:
    """The one customer ``ref`` means, or None when it is ambiguous (or matches nothing)."""
    if len(matches) == 1:
        return int(matches[0]["id"])
    same_name = [m for m in matches if m["name"] == ref.strip()]
    return int(same_name[0]["id"]) if len(same_name) == 1 else None


def print_candidates(ref: str, matches: list[dict[str, Any]], as_json: bool) -> None:
    """The customers an ambiguous reference could mean."""
    if as_json:
        print_json({"error": "ambiguous", "reference": ref, "candidates": matches})
        return
    console.print(f"{ref!r} matches {len(matches)} customers; give one of these ids (or a credit code):")
    print_table(console, CANDIDATE_COLUMNS,
                [[str(m["id"]), m["name"], m["credit_code"] or "—", m["matched_value"] or m["matched_by"]]
                 for m in matches])


AGING_LABELS = {"not_due": "not due", "1_30": "1–30 days", "31_60": "31–60 days", "61_90": "61–90 days",
                "over_90": ">90 days"}


def print_profile(p: Any, out: Console | None = None) -> None:
    """Render a profile as tables fitted to the terminal (the demo uses this too)."""
    out = out or console
    c = p.customer
    out.rule(f"[bold]{c['name']}[/]  #{c['id']}")
    basics = []
    for label, key in (("统一社会信用代码", "credit_code"), ("region", "region"), ("industry", "industry"),
                       ("phone", "phone"), ("tags", "tags")):
        source = p.provenance.get(key, {})
        value = c.get(key)
        shown = ", ".join(value) if isinstance(value, list) else str(value or "—")
        basics.append([label, shown, f"{source.get('system', '')} {source.get('external_id', '')}".strip()])
    if p.owner:
        basics.append(["owner", f"{p.owner['name']} ({p.owner.get('department') or ''})",
                       f"manager {p.owner.get('manager') or '—'}"])
    basics.append(["identities", ", ".join(f"{i['system']}:{i['external_id']}" for i in p.identities) or "—", ""])
    basics.append(["completeness", f"{p.completeness:.0%}", ""])
    print_table(out, (Column("field"), Column("value", "text"), Column("source", "extra")), basics)
    print_table(out, (Column("currency"), Column("open", "amount"), Column("overdue", "amount"),
                      Column("bills", "amount")),
                [[s.currency, money(s.open_amount), money(s.overdue_amount), str(s.open_bills)]
                 for s in p.receivables], title="应收 receivables")
    if p.receivables:
        print_table(out, (Column("aging"), *(Column(s.currency, "amount") for s in p.receivables)),
                    [[AGING_LABELS.get(bucket, bucket), *(money(s.aging.get(bucket)) for s in p.receivables)]
                     for bucket in AGING_LABELS], title="账龄 aging")
    limit = money(p.credit_limit) if p.credit_limit is not None else "—"
    out.print(f"credit used {money(p.credit_used)} of limit {limit}")
    print_table(out, (Column("order"), Column("date"), Column("amount", "amount"), Column("status", "extra"),
                      Column("ERP bill"), Column("ERP status", "extra")),
                [[o["order_number"], str(o["order_date"]), f"{money(o['total_amount'])} {o['currency']}", o["status"],
                  o["erp_bill_number"] or "—", o["erp_status"] or "—"] for o in p.recent_orders], title="orders")
    if p.open_tasks:
        print_table(out, (Column("task", "text"), Column("due"), Column("assignee", "extra"),
                          Column("pushed", "extra")),
                    [[t["title"], t["due_at"].strftime("%Y-%m-%d %H:%M"), t["assignee"],
                      ", ".join(f"{ch}:{len(v)}" for ch, v in (t["push_state"] or {}).items()) or "—"]
                     for t in p.open_tasks], title="open tasks")
    if p.contacts:
        out.print("contacts: " + "; ".join(f"{x['name']} {x['title'] or ''}".strip() for x in p.contacts[:8]))
