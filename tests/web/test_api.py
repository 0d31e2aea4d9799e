"""The JSON API returns exactly the profile query's result; health reports database and schema."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from canonical_model.profile import Profile
from hub.database import Database, create_db_engine, head_revision
from hub.runtime import HubRuntime
from hub.vault.display import profile_for_display
from hub.web import create_web_app
from hub.web.api_models import ProfileOut
from tests.crm_api.test_openapi_fuzz import OPERATIONS as CRM_API_OPERATIONS
from tests.support.access import bearer
from tests.web.conftest import TestClient


def test_profile_json_is_the_profile_query(client, web_data):
    as_of = dt.date(2026, 6, 30)
    for customer_id in (web_data.focus_id, web_data.erp_customer_id, web_data.xss_id):
        reply = client.get(f"/api/customers/{customer_id}", params={"as_of": as_of.isoformat()})
        assert reply.status_code == 200
        with web_data.db.engine.connect() as conn:
            # the API shows personal values opened (hub.vault), as the profile for display has them
            expected = profile_for_display(conn, customer_id, as_of=as_of)
        assert expected is not None
        assert reply.json() == expected.model_dump(mode="json")


def test_profile_json_defaults_to_today_in_the_hub_timezone(client, web_data):
    body = client.get(f"/api/customers/{web_data.focus_id}").json()
    assert body["as_of"] == web_data.today.isoformat()
    cny = next(r for r in body["receivables"] if r["currency"] == "CNY")
    assert (cny["open_amount"], cny["overdue_amount"]) == ("2630.00", "1550.00")  # money as exact strings


@pytest.mark.parametrize("as_of", ["0.0", "1700000000", "2026-6-30", "2026-02-30", "today"])
def test_as_of_must_be_an_iso_date_not_a_timestamp(client, web_data, as_of):
    # pydantic alone would read "0.0" as 1970-01-01 (found by the schemathesis run)
    reply = client.get(f"/api/customers/{web_data.focus_id}", params={"as_of": as_of})
    assert reply.status_code == 422


def test_api_model_has_exactly_the_profile_fields():
    # A field added to Profile must show up in the API (and its OpenAPI schema) too.
    assert list(ProfileOut.model_fields) == list(Profile.model_fields)


def test_unknown_customer_is_json_404(client):
    reply = client.get("/api/customers/999999999")
    assert reply.status_code == 404
    assert reply.json() == {"detail": "no customer 999999999"}
    assert client.get("/api/customers/0").status_code == 422
    assert client.get("/api/customers/9223372036854775808").status_code == 422  # beyond bigint


def test_healthz_ok(client):
    reply = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "database": "ok", "schema_revision": head_revision(),
                            "head_revision": head_revision()}


def test_app_also_takes_a_runtime(web_data, admin_token):
    runtime = HubRuntime(web_data.settings, web_data.db, actor="test")
    with TestClient(create_web_app(runtime, web_data.settings), headers=bearer(admin_token),
                    follow_redirects=False) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get(f"/customers/{web_data.focus_id}").status_code == 200


def test_no_swagger_ui_only_the_openapi_document(client):
    assert client.get("/api/docs").status_code == 404  # it would load scripts from a CDN
    paths = client.get("/openapi.json").json()["paths"].keys()
    crm_api = {path for _, path in CRM_API_OPERATIONS}  # tests/crm_api covers these
    assert paths - crm_api == {
        "/api/customers/{customer_id}", "/healthz", "/api/leads", "/api/leads/{lead_id}/claim",
        "/api/leads/{lead_id}/invalid", "/api/pool/customers", "/api/pool/customers/{customer_id}/claim",
        "/api/pool/customers/{customer_id}/assign"}
    assert "/api/customers" in paths


def test_healthz_reports_an_unmigrated_schema_and_an_unreachable_database(web_data, database_url):
    empty = Database(create_db_engine(database_url, "t_web_unmigrated"), "t_web_unmigrated", database_url)
    with TestClient(create_web_app(empty, web_data.settings)) as http:
        reply = http.get("/healthz")
    empty.dispose()
    assert reply.status_code == 503
    assert reply.json()["status"] == "error" and reply.json()["schema_revision"] is None

    url = sa.make_url(database_url).set(port=1).render_as_string(hide_password=False)
    down = Database(create_db_engine(url, "public"), "public", url)
    with TestClient(create_web_app(down, web_data.settings)) as http:
        reply = http.get("/healthz")
    down.dispose()
    assert reply.status_code == 503
    assert reply.json()["database"].startswith("unreachable")
    assert "127.0.0.1" not in reply.text and "postgres" not in reply.text


def test_docs_page_documents_every_api_operation_without_scripts(client):
    spec = client.get("/openapi.json").json()
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text.lower()
    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"<code>{method.upper()}</code> <code>{path}</code>" in page.text
    assert "q" in page.text and "as_of" in page.text  # parameters are listed
