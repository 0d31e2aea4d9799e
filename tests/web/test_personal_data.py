"""Personal data on pages and the API: masked for roles that may not see it, in clear for
those who may, and every read in clear on record in the audit log with its principal."""

from __future__ import annotations

import httpx
import pytest

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from tests.conftest import rows
from tests.support.access import Teams, bearer, build_teams, issue_session, issue_token

pytestmark = pytest.mark.e2e  # starts a server

MASKED_MOBILE, MASKED_EMAIL = "138****5678", "z***@corp.cn"


@pytest.fixture
def served(db, settings):
    teams = build_teams(db)
    with serve_in_thread(create_web_app(db, settings)) as server:
        yield server.url, teams


def reads(db) -> list:
    return rows(db, "SELECT actor, key, detail FROM audit_log WHERE operation = 'personal_data.read' ORDER BY id")


def test_finance_sees_masked_mobiles_and_emails_and_no_read_is_audited(db, served):
    url, teams = served
    with httpx.Client(base_url=url, headers=bearer(issue_token(db, Role.FINANCE))) as http:
        profile = http.get(f"/api/customers/{teams.alice_customer}").json()
        page = http.get(f"/customers/{teams.alice_customer}").text
    [contact] = profile["contacts"]
    assert (contact["mobile"], contact["email"]) == (MASKED_MOBILE, MASKED_EMAIL)
    assert profile["owner"]["mobile"] == "137****2222"
    for clear in (Teams.CONTACT_MOBILE, Teams.CONTACT_EMAIL, "13700002222"):
        assert clear not in page and clear not in str(profile)
    assert MASKED_MOBILE in page and MASKED_EMAIL in page
    assert reads(db) == []


def test_the_owner_sees_personal_data_in_clear_and_each_read_is_audited_once(db, served):
    url, teams = served
    token = issue_token(db, Role.SALES, user_id=teams.alice)
    cookie = issue_session(db, Role.SALES, user_id=teams.alice, via="wecom")
    with httpx.Client(base_url=url, headers=bearer(token)) as api:
        profile = api.get(f"/api/customers/{teams.alice_customer}").json()
        api.get("/api/customers", params={"q": "测试"})  # search shows no personal data: nothing to audit
    with httpx.Client(base_url=url, cookies={SESSION_COOKIE: cookie}) as browser:
        page = browser.get(f"/customers/{teams.alice_customer}").text
        browser.get(f"/customers/{teams.bob_customer}")  # not visible: no read, no audit
    assert profile["contacts"][0]["mobile"] == Teams.CONTACT_MOBILE
    assert Teams.CONTACT_MOBILE in page and Teams.CONTACT_EMAIL in page
    api_read, page_read = reads(db)
    assert api_read.key == page_read.key == f"customer:{teams.alice_customer}"
    assert api_read.actor == "api:token:艾丽丝" and api_read.detail["channel"] == "api"
    assert api_read.detail["principal"].startswith("token:") and api_read.detail["records"] == 2
    assert page_read.actor == "web:wecom:艾丽丝" and page_read.detail["channel"] == "page"
    assert page_read.detail["principal"].startswith("session:")
    # the audit says that personal data was read, never what it was
    assert Teams.CONTACT_MOBILE not in str(reads(db))


def test_an_administrator_and_the_crm_read_in_clear_on_record(db, served):
    url, teams = served
    for role in (Role.ADMIN, Role.CRM):
        with httpx.Client(base_url=url, headers=bearer(issue_token(db, role, label=f"{role} key"))) as http:
            assert http.get(f"/api/customers/{teams.pool_customer}").json()["contacts"][0]["email"] == \
                Teams.CONTACT_EMAIL
    assert [r.actor for r in reads(db)] == ["api:token:admin key", "api:token:crm key"]
