"""`make demo` is a promise: the whole demo flow runs green (at a small ERP scale here)."""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from rich.console import Console

from hub.access.passwords import verify_password
from hub.demo import DEMO_SCHEMA, run_demo

pytestmark = pytest.mark.e2e


def test_the_demo_runs_every_job_through_dagster_and_ends_with_a_profile(database_url, tmp_path):
    from hub.settings import Settings

    settings = Settings(database_url=database_url, home=tmp_path)  # type: ignore[arg-type]
    out = io.StringIO()
    summary = run_demo(settings, console=Console(file=out, width=160), kingdee_scale=0.02)

    jobs = [j.job for j in summary.jobs]
    assert jobs == ["kingdee_inbound", "orders_to_erp", "kingdee_inbound", "receivables_to_crm", "wecom_inbound",
                    "dingtalk_inbound", "todo_pushes", "todo_pushes", "approvals_reconcile", "approvals_reconcile",
                    "orders_to_erp", "crm_webhook_push"]
    assert all(j.success for j in summary.jobs)
    assert all(c.passed for j in summary.jobs for c in j.checks if c.severity == "ERROR")
    pushed = summary.jobs[1].assets["kingdee/sales_order_push"]
    assert pushed["done"] == 39 and pushed["dead"] == 0  # the biggest order waits for its OA approval
    # both chat platforms at once: each person reminded on one of them, never both
    pushes = summary.jobs[6].assets
    assert pushes["crm/reminders_due"]["wecom_queued"] > 0 and pushes["crm/reminders_due"]["dingtalk_queued"] > 0
    assert pushes["wecom/reminder_push"]["done"] > 0 and pushes["dingtalk/reminder_push"]["done"] > 0
    assert pushes["dingtalk/todo_push"]["done"] > 0 and pushes["dingtalk/todo_push"]["dead"] == 0
    split = {what: numbers for step, what, numbers in summary.rows}
    assert "reminded on both 0" in split["one platform per person"]
    # to-dos ticked off in DingTalk close their CRM tasks, and nothing echoes back
    assert summary.jobs[7].assets["dingtalk/todo_completions"]["updated"] == 3
    assert split["to-dos ticked off"] == "tasks closed 3, echo updates sent 0"
    # signed webhooks back to the CRM: each order in the ERP and each task done in chat, once,
    # every signature verified; the lost replies were redelivered with the same delivery id
    # the biggest order: one OA approval on its owner's platform, agreed, then the ERP
    approval = next(numbers for step, what, numbers in summary.rows if step == "OA approval")
    assert "approval approved" in approval and "order in_erp" in approval and "ERP bill —" not in approval
    webhooks = summary.jobs[11].assets["crm/webhook_push"]
    assert webhooks["dead"] == 0 and webhooks["done"] >= 43
    assert "task.done_in_chat 3" in split["webhooks"] and "order.in_erp" in split["webhooks"]
    assert "redeliveries (same delivery id) 2, refused signatures 0" in split["webhooks"]
    text = out.getvalue()
    assert "应收 receivables" in text and "credit used" in text
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        bills = conn.execute(sa.text(
            f"SELECT count(*) FROM {DEMO_SCHEMA}.sales_order WHERE source_system = 'crm' "
            "AND erp_bill_number IS NOT NULL")).scalar()
        logins = {r.username: r for r in conn.execute(sa.text(
            f"SELECT username, role, user_id, password_hash FROM {DEMO_SCHEMA}.app_login"))}
        conn.execute(sa.text(f"DROP SCHEMA {DEMO_SCHEMA} CASCADE"))
        conn.commit()
    engine.dispose()
    assert bills == 40
    # and it says how to sign in: two logins whose one-time passwords it printed
    assert f"HUB_DATABASE_SCHEMA={DEMO_SCHEMA} hub serve" in text
    assert (logins["demo-admin"].role, logins["demo-sales"].role) == ("admin", "sales")
    assert logins["demo-sales"].user_id is not None
    for name, login in logins.items():
        printed = re.search(rf"{name} / (\S+)", text)
        assert printed and verify_password(login.password_hash, printed.group(1))
