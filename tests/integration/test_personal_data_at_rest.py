"""Personal data at rest: what the engine and the rules store is sealed, and everything that
matches on it still matches exactly (identity resolution, directory linking, ERP salespeople,
search by a full mobile); `hub keys rotate` re-seals without a moment where a value cannot be
read; `hub keys encrypt-existing` finishes rows from before encryption; `hub doctor` says so."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from canonical_model.records import ContactRecord, CustomerRecord, InternalUserRecord
from hub.contracts import Salesperson
from hub.database import create_db_engine, dagster_storage_url
from hub.engine.targets import PageContext, upsert_contacts, upsert_customers, upsert_internal_users
from hub.errors import ConfigError, VaultError
from hub.rules.salespeople import link_erp_salespeople
from hub.runtime import HubRuntime
from hub.vault import PERSONAL_COLUMNS, Vault, bind, is_sealed
from hub.vault.display import find_customers, profile_for_display
from hub.vault.rotation import column_status, plaintext_left, reencrypt
from tests.conftest import rows, scalar

MOBILE = "13912345678"


def customer(db: Any, name: str) -> int:
    with db.begin() as conn:
        return int(conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES (:n, :n) RETURNING id"),
                                {"n": name}).scalar_one())


def write(db: Any, handler: Any, system: str, *records: Any) -> Any:
    with db.begin() as conn:
        ctx = PageContext(conn, system, "test", None)
        return handler(ctx, [({"id": r.external_id}, r, f"h-{r.external_id}-{i}") for i, r in enumerate(records)])


def contact(ext: str, corp: str, mobile: str | None = MOBILE, email: str | None = "Wang.Li@Corp.cn") -> ContactRecord:
    return ContactRecord(source_system="wecom", source_object="external_contact", external_id=ext, name="王丽",
                         mobile=mobile, email=email, corp_name=corp)


def test_contacts_are_stored_sealed_with_a_blind_index_and_found_by_a_full_mobile(db):
    # given a customer and, from a sync, one of its contacts with a mobile and an e-mail
    cid = customer(db, "苏州恒瑞精密机械有限公司")
    outcome = write(db, upsert_contacts, "wecom", contact("wm1", "苏州恒瑞精密机械有限公司", mobile="+86 139-1234-5678"))
    assert outcome.inserted == 1

    # then the row holds neither value in plain text, each bound to its column, with its index
    [row] = rows(db, "SELECT mobile, mobile_hash, email, email_hash FROM contact")
    assert is_sealed(row.mobile) and is_sealed(row.email)
    assert MOBILE not in row.mobile + row.mobile_hash and "corp" not in row.email.lower()
    assert db.vault.open("contact", "mobile", row.mobile) == MOBILE
    assert db.vault.open("contact", "email", row.email) == "wang.li@corp.cn"
    assert row.mobile_hash == db.vault.blind_index("mobile", MOBILE)
    # and search by the full mobile, however it is typed, finds the customer, naming the contact
    with db.begin() as conn:
        for typed in (MOBILE, "+86 139 1234 5678", "wang.li@corp.cn"):
            [hit] = find_customers(conn, typed)
            assert (hit["id"], hit["matched_by"], hit["matched_value"]) == (cid, "contact", "王丽")
        # a fragment of a number finds nothing: there is no plaintext to look into
        assert find_customers(conn, MOBILE[:7]) == []
        # and the profile shows the values opened (masking is the pages' business)
        profile = profile_for_display(conn, cid)
    assert profile is not None
    assert [(c["mobile"], c["email"]) for c in profile.contacts] == [(MOBILE, "wang.li@corp.cn")]


def test_a_contact_without_a_company_is_linked_by_its_mobile_known_at_one_customer(db):
    # given a contact of a customer, stored sealed
    cid = customer(db, "深圳市腾飞科技有限公司")
    write(db, upsert_contacts, "wecom", contact("wm1", "深圳市腾飞科技有限公司"))
    # when a second contact record arrives without a company but with the same number, typed differently
    outcome = write(db, upsert_contacts, "wecom", contact("wm2", None, mobile="86 139 1234 5678"))  # type: ignore[arg-type]
    # then it is linked to that customer through the blind index
    assert outcome.inserted == 1 and outcome.rejected == []
    assert scalar(db, "SELECT customer_id FROM contact WHERE external_id = 'wm2'") == cid


def test_identity_resolution_merges_a_customer_whose_phone_is_a_known_contacts_mobile(db):
    # given a golden customer with a contact whose mobile is sealed
    cid = customer(db, "杭州云帆数据服务有限公司")
    write(db, upsert_contacts, "wecom", contact("wm1", "杭州云帆数据服务有限公司"))
    # when an ERP record of another name arrives whose phone is that mobile
    record = CustomerRecord(source_system="kingdee", source_object="customer", external_id="CUST9",
                            name="云帆数据（杭州）", phone="+86 13912345678")
    outcome = write(db, upsert_customers, "kingdee", record)
    # then it resolves to that customer (rule: contact) instead of creating a new one
    assert (outcome.inserted, outcome.updated) == (0, 1)
    assert scalar(db, "SELECT count(*) FROM customer") == 1
    assert scalar(db, "SELECT canonical_id FROM external_identity WHERE external_id = 'CUST9'") == cid


def test_a_directory_user_matches_the_crm_user_with_the_same_mobile(db):
    # given a CRM user stored the way the demo and the API store them (sealed)
    with db.begin() as conn:
        user_id = conn.execute(sa.text(
            "INSERT INTO internal_user (name, mobile, mobile_hash, email, email_hash, source_system, external_id) "
            "VALUES ('李娜', :mobile, :mobile_hash, :email, :email_hash, 'crm', 'crm-lina') RETURNING id"),
            db.vault.protect("internal_user", mobile=MOBILE, email="lina@corp.cn")).scalar_one()
    # when the WeCom directory lists a member with that mobile (and no e-mail)
    member = InternalUserRecord(source_system="wecom", source_object="user", external_id="lina", name="李娜",
                                mobile="+8613912345678", wecom_userid="lina")
    outcome = write(db, upsert_internal_users, "wecom", member)
    # then the CRM user gets the WeCom account; no second person appears, the mobile stays sealed
    assert (outcome.inserted, outcome.updated) == (0, 1)
    [row] = rows(db, "SELECT id, wecom_userid, mobile, email FROM internal_user")
    assert (row.id, row.wecom_userid) == (user_id, "lina")
    assert is_sealed(row.mobile) and db.vault.open("internal_user", "mobile", row.mobile) == MOBILE
    assert db.vault.open("internal_user", "email", row.email) == "lina@corp.cn"  # kept: the directory had none


def test_an_erp_salesperson_is_linked_to_the_user_with_the_same_mobile(db):
    with db.begin() as conn:
        user_id = conn.execute(sa.text(
            "INSERT INTO internal_user (name, mobile, mobile_hash, source_system, external_id) "
            "VALUES ('周强', :mobile, :mobile_hash, 'crm', 'crm-zq') RETURNING id"),
            {k: v for k, v in db.vault.protect("internal_user", mobile=MOBILE).items()}).scalar_one()
        counts = link_erp_salespeople(conn, "yonyou", [Salesperson("S01", "周 强", mobile="139 1234 5678")])
    assert counts.linked == 1
    assert scalar(db, "SELECT canonical_id FROM external_identity WHERE object = 'salesperson'") == user_id


def seed_sealed_rows(db: Any, count: int) -> list[tuple[int, str]]:
    """``count`` contacts at one customer, sealed with the database's vault; (id, mobile) each."""
    cid = customer(db, "南京华康医疗器械有限公司")
    mobiles = [f"1390000{i:04d}" for i in range(count)]
    records = [contact(f"wm{i}", "南京华康医疗器械有限公司", mobile=m, email=f"c{i}@hk.cn") for i, m in enumerate(mobiles)]
    write(db, upsert_contacts, "wecom", *records)
    with db.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM contact ORDER BY id")).scalars().all()
        assert cid
    return list(zip(ids, mobiles, strict=True))


def every_value(db: Any, vault: Vault) -> list[str | None]:
    with db.engine.connect() as conn:
        return [vault.open("contact", "mobile", m) for m in conn.execute(sa.text(
            "SELECT mobile FROM contact ORDER BY id")).scalars()]


def test_a_rotation_leaves_every_value_readable_also_in_the_middle_of_it(db):
    # given 7 contacts sealed under key k1
    old: Vault = db.vault
    seeded = seed_sealed_rows(db, 7)
    expected = [m for _, m in seeded]
    # when the operator puts a new key k2 first (k1 still listed) and rotates, 3 rows a batch
    new = Vault({"k2": b"\x02" * 32, **old.keys}, "k2", old.index_key)
    bind(db.engine, new)
    seen_mid_rotation: list[tuple[str, dict[str, int]]] = []

    def reader(label: str, done: int) -> None:
        # a reader between two batches sees every value, whichever key it carries
        if label == "contact.mobile":
            assert every_value(db, new) == expected
            with db.engine.connect() as conn:
                [status] = [s for s in column_status(conn) if s.label == label]
            seen_mid_rotation.append((label, dict(status.by_key)))

    counts = reencrypt(db, new, batch_rows=3, progress=reader)

    # then the reader saw both keys at once along the way, and every value is now under k2
    assert ("contact.mobile", {old.current: 4, "k2": 3}) in seen_mid_rotation
    assert counts.resealed["contact.mobile"] == 7 and counts.resealed["contact.email"] == 7
    assert every_value(db, new) == expected
    with db.engine.connect() as conn:
        status = {s.label: s for s in column_status(conn)}
    assert status["contact.mobile"].by_key == {"k2": 7} and status["contact.email"].by_key == {"k2": 7}
    # the old key alone no longer opens them; the blind index did not change, search still finds them
    with pytest.raises(VaultError):
        every_value(db, old)
    with db.begin() as conn:
        assert [h["matched_by"] for h in find_customers(conn, expected[3])] == ["contact"]
    # and a second pass is a no-op (idempotent, nothing left to resume), audited both times
    assert reencrypt(db, new, batch_rows=3).total == 0
    audits = rows(db, "SELECT operation, detail FROM audit_log WHERE operation = 'keys:rotate' ORDER BY id")
    assert [a.detail["resealed"].get("contact.mobile") for a in audits] == [7, None]
    assert all(MOBILE[:7] not in json.dumps(a.detail) for a in audits)


def test_encrypt_existing_seals_plaintext_rows_and_fills_their_index(db):
    # given rows written in plain text (before encryption, or by a writer not converted yet)
    cid = customer(db, "成都锦程物流有限公司")
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO contact (customer_id, name, mobile, email, source_system, external_id) "
                             "VALUES (:c, '赵敏', '+86 139 1234 5678', 'Zhao@JC.cn', 'crm', 'p1')"), {"c": cid})
        conn.execute(sa.text("INSERT INTO lead (company_name, mobile, source_system, external_id) "
                             "VALUES ('锦程', '13912345678', 'crm', 'L1')"))
        left = plaintext_left(conn)
    assert left == {"contact.mobile": 1, "contact.email": 1, "lead.mobile": 1}
    # readers take plaintext as it is meanwhile
    with db.begin() as conn:
        profile = profile_for_display(conn, cid)
    assert profile is not None and profile.contacts[0]["mobile"] == "+86 139 1234 5678"

    # when the plaintext is encrypted
    counts = reencrypt(db, db.vault, only_plaintext=True, batch_rows=1)

    # then nothing plain is left, the values are sealed and normalised, and matching works on them
    assert counts.total == 3
    with db.begin() as conn:
        assert plaintext_left(conn) == {}
        [hit] = find_customers(conn, "13912345678")
    assert hit["id"] == cid
    [row] = rows(db, "SELECT mobile, email, mobile_hash, email_hash FROM contact")
    assert db.vault.open("contact", "mobile", row.mobile) == MOBILE
    assert db.vault.open("contact", "email", row.email) == "zhao@jc.cn"
    assert row.email_hash == db.vault.blind_index("email", "zhao@jc.cn")
    assert scalar(db, "SELECT mobile_hash FROM lead") == db.vault.blind_index("mobile", MOBILE)


def test_every_sealed_column_exists_with_its_blind_index(db):
    with db.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for pc in PERSONAL_COLUMNS:
            columns = {c["name"] for c in inspector.get_columns(pc.table)}
            assert pc.column in columns and (pc.hash_column is None or pc.hash_column in columns)


def test_doctor_reports_the_vault_the_plaintext_left_and_the_database_sslmode(db, settings, monkeypatch, tmp_path):
    from hub.cli import app

    # given a plaintext mobile in the store and keys from the environment
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO lead (company_name, mobile, source_system, external_id) "
                             "VALUES ('锦程', '13912345678', 'crm', 'L1')"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["doctor", "--json"], env={"COLUMNS": "200"})
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["vault"]["status"] == "ok" and "current key demo1" in checks["vault"]["detail"]
    assert checks["personal data"]["status"] == "warning"
    assert "1 plaintext value(s) stored (lead.mobile: 1): run `hub keys encrypt-existing`" in \
        checks["personal data"]["detail"]
    assert checks["database tls"]["detail"].startswith("sslmode=prefer (libpq default); this connection")
    assert "13912345678" not in result.stdout

    # and `hub keys encrypt-existing` then `hub keys status` show it done
    out = CliRunner().invoke(app, ["keys", "encrypt-existing", "--batch", "10"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "lead.mobile: 1 row(s) re-sealed" in out.stdout
    status = CliRunner().invoke(app, ["keys", "status", "--json"], env={"COLUMNS": "200"})
    by_column = {s["column"]: s for s in json.loads(status.stdout)}
    assert by_column["lead.mobile"] == {"column": "lead.mobile", "by_key": {"demo1": 1}, "plaintext": 0,
                                        "missing_hash": 0}


@pytest.mark.parametrize("dagster", [False, True], ids=["hub (psycopg)", "dagster storage (psycopg2)"])
def test_the_sslmode_in_the_database_url_reaches_the_driver(database_url, dagster):
    """psycopg (and psycopg2 for Dagster's storage) take ``sslmode`` from the URL: asking for
    TLS is either refused by a server without it, or gives an encrypted connection."""
    url = make_url(database_url).update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    engine = sa.create_engine(dagster_storage_url(url)) if dagster else create_db_engine(url, "public")
    try:
        with engine.connect() as conn:
            encrypted = conn.execute(sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar()
        assert encrypted is True
    except sa.exc.OperationalError as exc:
        assert "SSL" in str(exc)
    finally:
        engine.dispose()


def test_outside_sandbox_mode_a_connector_over_plain_http_is_refused_naming_the_variable(db, settings):
    real = settings.model_copy(update={"sandbox": False}).with_connector("kingdee", base_url="http://k3.corp.cn/k3cloud/")
    runtime = HubRuntime(real, db)
    with pytest.raises(ConfigError, match=r"^HUB_KINGDEE__BASE_URL is plain http: use https, or set "
                                          r"HUB_KINGDEE__ALLOW_HTTP=true"):
        runtime.connector_settings("kingdee")
    allowed = HubRuntime(real.with_connector("kingdee", allow_http=True), db)
    with pytest.raises(ConfigError, match="kingdee is not configured"):  # on to the next check
        allowed.connector_settings("kingdee")
    # in sandbox mode a sandbox on this machine is plain http, as it should be
    with HubRuntime(settings, db) as sandboxed:
        assert (sandboxed.connector_settings("kingdee").base_url or "").startswith("http://127.0.0.1")
