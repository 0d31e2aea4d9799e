"""Identity resolution through the engine: golden records, links and conflicts in the database."""

from __future__ import annotations

from collections.abc import Iterator

from canonical_model.records import CustomerRecord
from hub.contracts import Page, StreamSpec
from hub.engine import sync_stream
from tests.conftest import rows, scalar
from tests.support.synthetic import synthetic_credit_code


def customer_stream(system: str) -> StreamSpec:
    def read(records: list[dict], cursor: str | None) -> Iterator[Page]:
        yield Page(records, None)

    return StreamSpec(
        name="customers", source_object="customer", target="customer", key_field="id", cursor_field=None,
        read_pages=read,
        map_record=lambda raw: CustomerRecord(source_system=system, source_object="customer", external_id=raw["id"],
                                              name=raw["name"], credit_code=raw.get("code"), region=raw.get("region")),
    )


def test_two_systems_describing_one_company_share_one_golden_record(db):
    # given the ERP knows the company by credit code and the CRM by a name variant plus the same code
    sync_stream(db, "kingdee", customer_stream("kingdee"),
                [{"id": "K001", "name": "深圳市腾飞科技有限公司", "code": synthetic_credit_code(1), "region": "深圳"}])
    sync_stream(db, "crm", customer_stream("crm"),
                [{"id": "C-9", "name": "深圳市腾飞科技（中国）有限责任公司", "code": synthetic_credit_code(1)}])

    # then one customer, two identities, provenance per field
    assert scalar(db, "SELECT count(*) FROM customer") == 1
    links = rows(db, "SELECT system, external_id FROM external_identity ORDER BY system")
    assert [(r.system, r.external_id) for r in links] == [("crm", "C-9"), ("kingdee", "K001")]
    sources = scalar(db, "SELECT field_sources FROM customer")
    assert sources["region"]["system"] == "kingdee" and sources["name"]["system"] == "crm"


def test_same_name_with_different_codes_is_flagged_not_merged(db):
    sync_stream(db, "kingdee", customer_stream("kingdee"),
                [{"id": "K001", "name": "上海华创电子有限公司", "code": synthetic_credit_code(1)},
                 {"id": "K002", "name": "上海华创电子股份有限公司", "code": synthetic_credit_code(2)}])

    assert scalar(db, "SELECT count(*) FROM customer") == 2
    conflict = rows(db, "SELECT external_id, reason, candidate_customer_ids FROM identity_conflict")
    assert [(c.external_id, c.reason) for c in conflict] == [("K002", "same_name_different_credit_code")]


def test_records_of_one_page_resolve_to_customers_created_earlier_in_it_with_real_ids(db):
    # given one page where K002 shares K001's credit code, K003 K001's name under another
    # code, and K004 is new (customers are inserted in batches, with provisional ids until then)
    sync_stream(db, "kingdee", customer_stream("kingdee"), [
        {"id": "K001", "name": "上海华创电子有限公司", "code": synthetic_credit_code(1)},
        {"id": "K002", "name": "华创电子（上海）", "code": synthetic_credit_code(1)},
        {"id": "K003", "name": "上海华创电子股份有限公司", "code": synthetic_credit_code(2)},
        {"id": "K004", "name": "苏州远景机械有限公司", "code": synthetic_credit_code(3)},
    ])

    # then K001 and K002 share one customer; K003 and K004 got their own, in page order
    links = {r.external_id: r.canonical_id for r in rows(db, "SELECT external_id, canonical_id FROM external_identity")}
    customers = [r.id for r in rows(db, "SELECT id FROM customer ORDER BY id")]
    assert customers == [links["K001"], links["K003"], links["K004"]] and links["K002"] == links["K001"]
    assert customers == list(range(customers[0], customers[0] + 3))
    # and K003's conflict names K001's customer by its real id, in the columns and in words
    (conflict,) = rows(db, "SELECT external_id, reason, chosen_customer_id, candidate_customer_ids, detail "
                           "FROM identity_conflict")
    assert (conflict.external_id, conflict.reason) == ("K003", "same_name_different_credit_code")
    assert conflict.chosen_customer_id is None and conflict.candidate_customer_ids == [links["K001"]]
    assert f"customer(s) [{links['K001']}]" in conflict.detail["message"]


def test_invalid_credit_code_is_reported_and_not_stored(db):
    sync_stream(db, "kingdee", customer_stream("kingdee"),
                [{"id": "K001", "name": "成都博远物流有限公司", "code": "91510107MA00000000"}])
    assert scalar(db, "SELECT credit_code FROM customer") is None
    assert scalar(db, "SELECT reason FROM identity_conflict") == "invalid_credit_code"


def test_unchanged_customers_cost_no_write_on_resync(db):
    records = [{"id": f"K{i:03d}", "name": f"杭州第{i}软件有限公司", "code": synthetic_credit_code(i)} for i in range(50)]
    first = sync_stream(db, "kingdee", customer_stream("kingdee"), records)
    second = sync_stream(db, "kingdee", customer_stream("kingdee"), records)
    assert (first.counts.inserted, second.counts.unchanged, second.counts.updated) == (50, 50, 0)


def contact_stream() -> StreamSpec:
    from canonical_model.records import ContactRecord

    def read(records: list[dict], cursor: str | None) -> Iterator[Page]:
        yield Page(records, None)

    return StreamSpec(
        name="external_contacts", source_object="contact", target="contact", key_field="id", cursor_field=None,
        read_pages=read,
        map_record=lambda raw: ContactRecord(source_system="wecom", source_object="contact", external_id=raw["id"],
                                             name=raw["name"], corp_name=raw.get("corp")),
    )


def test_contacts_link_by_full_or_unique_short_corp_name_and_the_rest_is_quarantined(db):
    sync_stream(db, "kingdee", customer_stream("kingdee"), [
        {"id": "K1", "name": "苏州恒瑞精密机械有限公司", "code": synthetic_credit_code(1)},
        {"id": "K2", "name": "无锡华锐电子科技有限公司", "code": synthetic_credit_code(2)},
        {"id": "K3", "name": "无锡华锐电子材料有限公司", "code": synthetic_credit_code(3)},
    ])
    report = sync_stream(db, "wecom", contact_stream(), [
        {"id": "c1", "name": "王采购", "corp": "苏州恒瑞精密机械有限公司"},  # full name
        {"id": "c2", "name": "李工", "corp": "恒瑞精密"},  # unique short name
        {"id": "c3", "name": "赵经理", "corp": "华锐电子"},  # short name inside two customers: ambiguous
        {"id": "c4", "name": "钱总", "corp": "恒瑞"},  # too short to trust
        {"id": "c5", "name": "孙女士"},  # nothing to go on
    ])
    assert (report.counts.inserted, report.counts.quarantined) == (2, 3)
    linked = {r.external_id: r.customer_id for r in rows(db, "SELECT external_id, customer_id FROM contact")}
    assert linked["c1"] == linked["c2"]
    reasons = {r.source_ref: r.reason for r in rows(db, "SELECT source_ref, reason FROM quarantine")}
    assert "link the contact to one by hand" in reasons["c3"]
    assert set(reasons) == {"c3", "c4", "c5"}
