"""Survivorship rules through the engine, record by record: precedence, ties, people's decisions.

Streams of hand-written records (``hub.engine.sync_stream``) into a real Postgres; the rules
are ``hub.survivorship``'s defaults unless a test binds others.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from hub.engine import sync_stream
from hub.rules.pool import take_from_pool
from hub.survivorship import Claim, Precedence, bind_precedence, survivor
from tests.conftest import rows, scalar
from tests.support.customer_streams import hand_written_customers
from tests.support.synthetic import synthetic_credit_code

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def sync(db, system: str, *records: dict[str, Any]):
    return sync_stream(db, system, hand_written_customers(system), list(records)).counts


def customer_of(db, code: str) -> Any:
    return rows(db, "SELECT * FROM customer WHERE credit_code = :c", c=code)[0]


def users(db, *names: str) -> dict[str, int]:
    """Internal users of the CRM, each also a Kingdee salesperson numbered S-<name>."""
    out = {}
    with db.begin() as conn:
        for name in names:
            uid = conn.exec_driver_sql(
                "INSERT INTO internal_user (name, source_system, external_id) VALUES (%s, 'crm', %s) RETURNING id",
                (name, f"u-{name}")).scalar_one()
            conn.exec_driver_sql(
                "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
                "VALUES ('kingdee', 'salesperson', %s, 'internal_user', %s)", (f"S-{name}", uid))
            out[name] = uid
    return out


def test_crm_owner_and_erp_credit_limit_survive_whichever_system_writes_last(db):
    people = users(db, "zhang", "li")
    # given company 1 written by Kingdee then the CRM, and company 2 by the CRM then Kingdee, alike
    for n, order in ((1, ("kingdee", "crm")), (2, ("crm", "kingdee"))):
        code = synthetic_credit_code(n)
        said = {
            "kingdee": {"id": f"K{n}", "name": f"苏州第{n}精密机械有限公司", "code": code, "owner": "S-li",
                        "credit_limit": "800000.00", "region": "华东", "modified": T0},
            "crm": {"id": f"C{n}", "name": f"苏州第{n}精密机械（中国）有限公司", "code": code, "owner": "u-zhang",
                    "credit_limit": "1000.00", "industry": "机械"},
        }
        for system in order:
            sync(db, system, said[system])

    # then both golden records show the CRM's owner, name and industry, Kingdee's credit limit and region
    for n in (1, 2):
        row = customer_of(db, synthetic_credit_code(n))
        assert row.owner_id == people["zhang"] and str(row.credit_limit) == "800000.00"
        assert (row.field_sources["owner_id"]["system"], row.field_sources["credit_limit"]["system"]) == (
            "crm", "kingdee")
        assert (row.name, row.industry, row.region) == (f"苏州第{n}精密机械（中国）有限公司", "机械", "华东")
        assert row.normalized_name == f"苏州第{n}精密机械"


def test_two_records_of_one_system_tie_on_rank_and_the_latest_change_at_the_source_wins(db):
    # given two Kingdee customers of one company (a duplicate in the ERP), changed at different times,
    # synced oldest-first for company 1 and newest-first for company 2
    for n, newest_first in ((1, False), (2, True)):
        code = synthetic_credit_code(n)
        old = {"id": f"K{n}-a", "name": f"杭州第{n}软件有限公司", "code": code, "region": "杭州", "modified": T0}
        new = {"id": f"K{n}-b", "name": f"杭州第{n}软件有限公司", "code": code, "region": "浙江",
               "modified": T0 + dt.timedelta(days=3)}
        for record in ((new, old) if newest_first else (old, new)):
            sync(db, "kingdee", record)

    # then both show the region of the record changed last at its source
    for n in (1, 2):
        row = customer_of(db, synthetic_credit_code(n))
        assert (row.region, row.field_sources["region"]["external_id"]) == ("浙江", f"K{n}-b")


def test_a_customer_claimed_from_the_pool_keeps_its_owner_when_the_erp_names_another(db):
    people = users(db, "zhao", "qian")
    code = synthetic_credit_code(7)
    # given an ERP customer without an owner, claimed from the public pool by 赵
    sync(db, "kingdee", {"id": "K7", "name": "成都博远物流有限公司", "code": code, "modified": T0})
    customer_id = customer_of(db, code).id
    with db.begin() as conn:
        take_from_pool(conn, customer_id, people["zhao"], by="session:9")
    # when the ERP later gives it a salesperson (钱) and another region
    sync(db, "kingdee", {"id": "K7", "name": "成都博远物流有限公司", "code": code, "owner": "S-qian", "region": "西南",
                         "modified": T0 + dt.timedelta(days=1)})

    # then the person's decision in the hub stands (hub ranks before the ERPs), the region is the ERP's
    row = customer_of(db, code)
    assert (row.owner_id, row.field_sources["owner_id"]["system"], row.region) == (people["zhao"], "hub", "西南")


def test_an_unchanged_record_applied_again_writes_nothing(db):
    code = synthetic_credit_code(3)
    kingdee = {"id": "K3", "name": "深圳市腾飞科技有限公司", "code": code, "region": "深圳", "modified": T0}
    crm = {"id": "C3", "name": "腾飞科技", "code": code, "industry": "电子"}
    sync(db, "kingdee", kingdee)
    sync(db, "crm", crm)
    before = rows(db, "SELECT updated_at, field_sources FROM customer")

    # when both records come again with their hashes forgotten (a forced re-read)
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE external_identity SET content_hash = NULL")
    counts = [sync(db, "crm", crm), sync(db, "kingdee", kingdee)]

    # then they count as unchanged and the customer row is as it was
    assert [(c.updated, c.unchanged) for c in counts] == [(0, 1), (0, 1)]
    assert rows(db, "SELECT updated_at, field_sources FROM customer") == before


def test_a_bound_precedence_is_what_the_engine_decides_with(db):
    # given the ERP ranked before the CRM for names
    bind_precedence(db.engine, Precedence.parse("kingdee,crm,hub"))
    code = synthetic_credit_code(4)
    sync(db, "kingdee", {"id": "K4", "name": "宁波同力食品股份有限公司", "code": code, "modified": T0})
    sync(db, "crm", {"id": "C4", "name": "同力食品", "code": code})
    # then the golden name is Kingdee's, and the CRM's is kept as its record's claim
    assert customer_of(db, code).name == "宁波同力食品股份有限公司"
    assert scalar(db, "SELECT source_values -> 'values' ->> 'name' FROM external_identity WHERE external_id = 'C4'"
                  ) == "同力食品"


@pytest.mark.parametrize(("claims", "winner"), [
    # rank first, whatever the times
    ([Claim("yonyou", "Y", "a", "2026-11-03T00:00:00+00:00"), Claim("kingdee", "K", "b", "2026-11-01T00:00:00+00:00")],
     "K"),
    # one rank: the latest change; no time counts as oldest
    ([Claim("kingdee", "K1", "a", None), Claim("kingdee", "K2", "b", "2026-11-01T00:00:00+00:00")], "K2"),
    # empty values are no claim
    ([Claim("crm", "C", ""), Claim("yonyou", "Y", "b")], "Y"),
    # same rank, same time: the smaller external id, so the answer never depends on the order given
    ([Claim("kingdee", "K9", "a"), Claim("kingdee", "K1", "b")], "K1"),
])
def test_survivor_rules(claims, winner):
    rules = Precedence.parse("crm,hub,kingdee,yonyou")
    assert survivor("name", claims, rules).external_id == winner  # type: ignore[union-attr]
    assert survivor("name", list(reversed(claims)), rules).external_id == winner  # type: ignore[union-attr]


def test_a_record_merged_by_a_person_takes_part_in_the_chosen_customer_at_once(db):
    from hub.conflicts import resolve_conflict

    # given two Kingdee customers with one name and two credit codes: flagged, kept apart
    one, two = synthetic_credit_code(11), synthetic_credit_code(12)
    sync(db, "kingdee", {"id": "K11", "name": "上海华创电子有限公司", "code": one, "modified": T0},
         {"id": "K12", "name": "上海华创电子股份有限公司", "code": two, "region": "上海",
          "modified": T0 + dt.timedelta(days=1)})
    conflict = rows(db, "SELECT id, candidate_customer_ids FROM identity_conflict")[0]
    target = customer_of(db, one).id

    # when a person merges K12 into the first customer
    with db.begin() as conn:
        resolve_conflict(conn, conflict.id, "merge", actor="test", target_id=target)

    # then the first customer shows K12's region now (nobody else claims one), keeps its own
    # credit code (the other is still another customer's), and K12's code shows as a disagreement
    row = customer_of(db, one)
    assert (row.region, row.field_sources["region"]["external_id"]) == ("上海", "K12")
    from canonical_model.profile import customer_profile

    with db.begin() as conn:
        profile = customer_profile(conn, target)
    assert profile is not None and "credit_code" in profile.disagreements


def test_the_cli_lists_disagreements_and_settles_again_after_the_precedence_changed(db, monkeypatch):
    import json

    from typer.testing import CliRunner

    from hub.cli import app

    # given Kingdee and the CRM naming one company differently (the CRM's name shown, by default)
    code = synthetic_credit_code(21)
    sync(db, "kingdee", {"id": "K21", "name": "厦门汇通自动化设备股份有限公司", "code": code, "modified": T0})
    sync(db, "crm", {"id": "C21", "name": "厦门汇通自动化", "code": code})
    for name, value in (("HUB_DATABASE_URL", db.url), ("HUB_DATABASE_SCHEMA", db.schema), ("HUB_SANDBOX", "1")):
        monkeypatch.setenv(name, value)
    runner = CliRunner(env={"COLUMNS": "200"})

    # when IT lists the disagreements
    listed = json.loads(runner.invoke(app, ["identity", "disagreements", "--json"], catch_exceptions=False).output)

    # then Kingdee's name is there beside the golden one, with where the golden one came from
    assert [(d["field"], d["golden"], d["golden_source"], d["system"], d["value"]) for d in listed] == [
        ("name", "厦门汇通自动化", "crm C21", "kingdee", "厦门汇通自动化设备股份有限公司")]

    # when the precedence is changed to Kingdee first and the customers are settled again
    monkeypatch.setenv("HUB_SURVIVORSHIP__PRECEDENCE", "kingdee,crm,hub")
    settled = runner.invoke(app, ["identity", "settle"], catch_exceptions=False)

    # then the golden name is Kingdee's, and settling once more changes nothing
    assert "settled: 1 customers changed" in settled.output
    assert customer_of(db, code).name == "厦门汇通自动化设备股份有限公司"
    assert "settled: 0 customers changed" in runner.invoke(app, ["identity", "settle"], catch_exceptions=False).output
