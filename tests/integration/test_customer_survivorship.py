"""Survivorship of golden customers: two ERPs (and the CRM) describing one company.

Real Postgres, the Kingdee and YonBIP sandboxes over real HTTP, the real engine. The
universe's firms both ERPs sell to resolve to one golden customer each (by credit code);
which source's value each golden field shows is decided by ``hub.survivorship`` (per-field
precedence, then the latest change at its source), never by which sync ran last.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from canonical_model.profile import customer_profile
from hub.database import Database
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import Settings, SurvivorshipSettings
from tests.conftest import rows, scalar, schema_database

# the golden fields as compared between hubs: ids differ per database, so the owner is its name
GOLDEN = ("SELECT c.credit_code, c.name, c.industry, c.phone, c.address, c.currency, u.name AS owner, "
          "c.field_sources FROM customer c LEFT JOIN internal_user u ON u.id = c.owner_id "
          "WHERE c.id IN (SELECT canonical_id FROM external_identity WHERE object = 'customer' "
          "GROUP BY canonical_id HAVING count(DISTINCT system) = 2) ORDER BY c.credit_code")


def golden(db: Database) -> dict[str, dict[str, Any]]:
    """Shared customers by credit code: their golden values and which record each came from."""
    out = {}
    for r in rows(db, GOLDEN):
        values = dict(r._mapping)
        sources = values.pop("field_sources")
        values["sources"] = {f: (s["system"], s["external_id"]) for f, s in sources.items()}
        out[r.credit_code] = values
    return out


def written(db: Database) -> dict[int, tuple[Any, Any]]:
    """(updated_at, field_sources) of every customer: what a write would change."""
    return {r.id: (r.updated_at, r.field_sources) for r in rows(db, "SELECT id, updated_at, field_sources FROM customer")}


@pytest.fixture
def other_db(database_url, schema_template, tmp_path) -> Iterator[tuple[Settings, Database]]:
    """A second, empty hub database (its own schema), to sync the same sandboxes in another order."""
    schema = f"t_{os.getpid()}_{secrets.token_hex(4)}"
    settings = Settings(database_url=database_url, database_schema=schema, home=tmp_path / "other", sandbox=True)
    with schema_database(settings, schema_template) as database:
        yield settings, database


def with_crm_people(db: Database) -> None:
    """The group's CRM users: ERP salespeople link to them, so ERP customers get owners."""
    seed = load_sandbox(connector("yonyou")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        load_crm_demo(conn, seed["people"], [], now=dt.datetime.now(dt.UTC), orders=0)


def start_hub(settings: Settings, db: Database, urls: dict[str, str] | None = None) -> HubRuntime:
    runtime = HubRuntime(settings, db, actor="test", sandbox_urls=urls or {})
    if not urls:
        runtime.sandbox("kingdee", scale=0.05)
        runtime.sandbox("yonyou", scale=0.05)
    with_crm_people(db)
    return runtime


@pytest.fixture
def hub(settings, db) -> Iterator[HubRuntime]:
    runtime = start_hub(settings, db)
    yield runtime
    runtime.close()


def urls_of(runtime: HubRuntime) -> dict[str, str]:
    return {system: runtime.sandbox(system).url for system in ("kingdee", "yonyou")}


def touch_yonyou_merchant(runtime: HubRuntime, code: str, **changes: Any) -> None:
    """Change a YonBIP customer as a user would: new values and a new pubts."""
    state = runtime.sandbox("yonyou").app.state.yonyou.data
    merchant = state.merchant_by_code(code)
    merchant.update(changes, pubts=state.stamp())


def touch_kingdee_customer(runtime: HubRuntime, number: str, **changes: Any) -> None:
    """Change a Kingdee customer: new values and an FModifyDate after every other."""
    state = runtime.sandbox("kingdee").app.state.kingdee.data
    table = state.tables["bd_customer"]
    doc = table.find_number(number)
    doc.update(changes, FModifyDate=state.now())
    table.remove(doc[table.form.pk])  # re-indexed as the sandbox's own save does
    table.insert(doc)
    state.version += 1


def shared_pair(db: Database) -> tuple[int, str, str]:
    """A golden customer both ERPs know: (customer id, Kingdee number, YonBIP code)."""
    row = rows(db, "SELECT k.canonical_id AS id, k.external_id AS k, y.external_id AS y FROM external_identity k "
                   "JOIN external_identity y ON y.canonical_id = k.canonical_id AND y.system = 'yonyou' "
                   "AND y.object = 'customer' WHERE k.system = 'kingdee' AND k.object = 'customer' "
                   "ORDER BY k.external_id LIMIT 1")[0]
    return row.id, row.k, row.y


def test_the_golden_record_does_not_depend_on_which_erp_syncs_first(hub, db, other_db):
    # given one hub syncing Kingdee then YonBIP, and another, over the same sandboxes, YonBIP then Kingdee
    hub.sync("kingdee", "customers")
    hub.sync("yonyou", "customers")
    other_settings, other = other_db
    reverse = start_hub(other_settings, other, urls_of(hub))
    try:
        reverse.sync("yonyou", "customers")
        reverse.sync("kingdee", "customers")
    finally:
        reverse.close()

    # then every shared customer has the same golden values from the same records in both hubs
    first, second = golden(db), golden(other)
    assert len(first) == 12
    assert first == second
    # and the values are the precedence's (default: Kingdee before YonBIP) wherever both give one
    for values in first.values():
        assert {values["sources"][f][0] for f in ("name", "industry", "phone", "address")} == {"kingdee"}


def test_a_resync_that_changes_nothing_writes_nothing_to_the_customers(hub, db):
    # given both ERPs synced
    hub.sync("kingdee", "customers")
    hub.sync("yonyou", "customers")
    before = written(db)
    audits = scalar(db, "SELECT count(*) FROM audit_log WHERE operation NOT LIKE 'batch:%' "
                        "AND operation NOT LIKE 'run:%' AND system NOT IN ('kingdee', 'yonyou')")

    # when each ERP's customers are applied again in full, content hashes forgotten (as
    # hub.rules.salespeople does when it links a salesperson), in the other order
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE external_identity SET content_hash = NULL WHERE object = 'customer'"))
    again = [hub.sync(system, "customers", full=True)[0].counts for system in ("yonyou", "kingdee")]

    # then no customer row was written (no new value, no provenance, no updated_at) and nothing audited
    assert [(c.read, c.updated) for c in again] == [(100, 0), (100, 0)]
    assert written(db) == before
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation NOT LIKE 'batch:%' "
                      "AND operation NOT LIKE 'run:%' AND system NOT IN ('kingdee', 'yonyou')") == audits


def test_a_lower_ranked_erp_changing_a_value_is_kept_and_shown_but_does_not_win(hub, db):
    hub.sync("kingdee", "customers")
    hub.sync("yonyou", "customers")
    customer_id, number, code = shared_pair(db)
    kingdee_address = scalar(db, "SELECT address FROM customer WHERE id = :id", id=customer_id)
    before = written(db)[customer_id]

    # when YonBIP (ranked after Kingdee by default) changes the address
    touch_yonyou_merchant(hub, code, address="苏州市工业园区星湖街328号")
    counts = hub.sync("yonyou", "customers")[0].counts

    # then the golden record keeps Kingdee's address and is not written at all
    assert counts.read >= 1
    assert written(db)[customer_id] == before
    assert scalar(db, "SELECT address FROM customer WHERE id = :id", id=customer_id) == kingdee_address
    # and YonBIP's value is kept with its record and shown as a disagreement on the profile
    with db.begin() as conn:
        profile = customer_profile(conn, customer_id)
    assert profile is not None
    assert "address" in profile.disagreements
    said = {(v["system"], v["external_id"]): (v["value"], v["chosen"], v["agrees"])
            for v in profile.field_values["address"]}
    assert said[("yonyou", code)] == ("苏州市工业园区星湖街328号", False, False)
    assert said[("kingdee", number)] == (kingdee_address, True, True)
    assert profile.provenance["address"]["system"] == "kingdee"

    # when Kingdee then changes only its phone, the address stays Kingdee's (no whole-record overwrite)
    touch_kingdee_customer(hub, number, FTEL="0512-66668888")
    assert hub.sync("kingdee", "customers")[0].counts.updated == 1
    assert rows(db, "SELECT address, phone FROM customer WHERE id = :id", id=customer_id)[0]._tuple() == (
        kingdee_address, "0512-66668888")


def test_the_precedence_setting_decides_which_erp_wins_field_by_field(settings, db, other_db):
    # given YonBIP ranked first for every field but the industry, which stays Kingdee's
    rules = SurvivorshipSettings(precedence="crm,hub,yonyou,kingdee", field_precedence={"industry": "kingdee,yonyou"})
    configured = settings.model_copy(update={"survivorship": rules})
    runtime = start_hub(configured, db)
    try:
        # when Kingdee syncs after YonBIP
        runtime.sync("yonyou", "customers")
        runtime.sync("kingdee", "customers")
    finally:
        runtime.close()

    # then YonBIP's values survive, except the industry
    for values in golden(db).values():
        assert values["sources"]["name"][0] == values["sources"]["address"][0] == "yonyou"
        assert values["sources"]["industry"][0] == "kingdee"


def test_survivorship_settings_name_known_systems_and_fields_only(monkeypatch):
    from hub.errors import ConfigError

    monkeypatch.setenv("HUB_SURVIVORSHIP__PRECEDENCE", "crm,kingdee=yonyou")
    monkeypatch.setenv("HUB_SURVIVORSHIP__FIELD_PRECEDENCE", '{"owner_id": "crm,hub"}')
    rules = Settings().survivorship.rules()
    assert rules.rank("name", "kingdee") == rules.rank("name", "yonyou") == 1
    assert rules.rank("owner_id", "kingdee") == 2  # not named for owners: after crm and hub

    monkeypatch.setenv("HUB_SURVIVORSHIP__PRECEDENCE", "crm,kingdea")
    with pytest.raises(ConfigError, match="unknown system 'kingdea'"):
        Settings()
    monkeypatch.setenv("HUB_SURVIVORSHIP__PRECEDENCE", "crm")
    monkeypatch.setenv("HUB_SURVIVORSHIP__FIELD_PRECEDENCE", '{"credit": "kingdee"}')
    with pytest.raises(ConfigError, match="unknown field 'credit'"):
        Settings()
