"""Schemathesis over the leads and pool API, signed in (the shared fuzz test calls it without a
credential, so it sees 401s only): no 5xx, whatever the body — on a schema of its own, since these
calls write. (Only server errors are checked: rules the schema cannot express, such as the credit
code's check character or "no control characters", refuse some schema-valid bodies with 422.)"""

from __future__ import annotations

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from hub.access import Role
from hub.web import create_web_app
from tests.support.access import bearer, issue_token

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
OPERATIONS = [("POST", "/api/leads"), ("GET", "/api/leads"), ("POST", "/api/leads/{lead_id}/claim"),
              ("POST", "/api/leads/{lead_id}/invalid"), ("GET", "/api/pool/customers"),
              ("POST", "/api/pool/customers/{customer_id}/claim"), ("POST", "/api/pool/customers/{customer_id}/assign")]
SETTINGS = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("role", [Role.SALES, Role.CRM])
def test_signed_in_calls_never_fail_with_a_server_error(db, settings, role):
    with db.begin() as conn:
        rep = conn.execute(sa.text("INSERT INTO internal_user (name, source_system, external_id) VALUES "
                                   "('王芳', 'crm', 'crm-wf') RETURNING id")).scalar_one()
        for i in range(3):
            conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES (:n, :n)"), {"n": f"池客户{i}"})
            conn.execute(sa.text("INSERT INTO lead (company_name, status, source_system, external_id) VALUES "
                                 "(:n, 'pool', 'crm', :n)"), {"n": f"池线索{i}"})
    headers = bearer(issue_token(db, role, user_id=rep if role is Role.SALES else None))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_web_app(db, settings))
    for method, path in OPERATIONS:
        for mode in (POSITIVE, NEGATIVE):
            @given(case=schema[path][method].as_strategy(generation_mode=mode))
            @SETTINGS
            def check(case: schemathesis.Case) -> None:
                response = case.call(headers=headers)
                assert response.status_code < 500, (case.as_curl_command(), response.text)

            check()
