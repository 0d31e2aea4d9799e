"""Schemathesis over the JSON API's OpenAPI document: no 5xx, answers conform to the schema.

The app is the session's (real Postgres, real data), reached in-process through ASGI.
Hypothesis generates ids up to and past the bigint edge, dates, and search text with
NULs, wildcards and any script; every answer is checked by schemathesis's default
checks (no server error, documented status code, content type and response schema;
invalid input refused with a 4xx).

Why not ``schemathesis.pytest.from_fixture(...).parametrize()``: with the installed
schemathesis 4.32.5 and pytest 9.2 it fails in setup (``'Function' object has no
attribute '_nodeid'``, schemathesis/pytest/lazy.py), so each operation's strategy is
driven with Hypothesis directly, which is the documented non-pytest-plugin API.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.crm_api.test_openapi_fuzz import OPERATIONS as CRM_API_OPERATIONS
from tests.support.access import bearer

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
OPERATIONS = [("GET", "/api/customers/{customer_id}"), ("GET", "/api/customers"), ("GET", "/healthz"),
              ("POST", "/api/leads"), ("GET", "/api/leads"), ("POST", "/api/leads/{lead_id}/claim"),
              ("POST", "/api/leads/{lead_id}/invalid"), ("GET", "/api/pool/customers"),
              ("POST", "/api/pool/customers/{customer_id}/claim"), ("POST", "/api/pool/customers/{customer_id}/assign")]
# /healthz takes no input, so there is nothing invalid to send it
RUNS = [(m, p, mode) for m, p in OPERATIONS for mode in (POSITIVE, NEGATIVE) if (p, mode) != ("/healthz", NEGATIVE)]
# Random exploration on developer machines; a fixed sequence in CI, so a landing never
# depends on luck (whatever a developer's run finds becomes a regression test).
SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def api_schema(web_app):
    """The OpenAPI document as the app serves it."""
    return schemathesis.openapi.from_asgi("/openapi.json", web_app)


def test_every_documented_operation_is_fuzzed(api_schema):
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS) | set(CRM_API_OPERATIONS)  # those are fuzzed with a token there


@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_operation_conforms_to_the_openapi_document(api_schema, method, path, mode, admin_token):
    # The read endpoints signed in (an administrator): without a token every answer would be
    # the same 401. The leads and pool writes have their own signed-in run
    # (test_leads_api_fuzz.py); here they are fuzzed as an anonymous caller.
    headers = bearer(admin_token) if method == "GET" else {}

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @SETTINGS
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers)

    check()


def test_real_profiles_conform_to_the_response_schema(api_schema, web_data, admin_token):
    # Random ids almost never exist; these do, so the 200 schema is checked on full profiles
    # (any as_of date Hypothesis picks).
    operation = api_schema["/api/customers/{customer_id}"]["GET"]
    for customer_id in (web_data.focus_id, web_data.erp_customer_id, web_data.xss_id):
        @given(case=operation.as_strategy(path_parameters={"customer_id": customer_id}))
        @settings(SETTINGS, max_examples=10)
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=bearer(admin_token))
            assert response.status_code == 200

        check()
