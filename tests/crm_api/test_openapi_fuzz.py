"""Schemathesis over the CRM API's operations in the app's OpenAPI document, with a CRM-role
token: no 5xx, every answer documented (status, content type, schema), invalid input refused.

Real Postgres with the organisation of :mod:`tests.support.crm_world` (so valid ids exist);
driven with Hypothesis directly, as ``tests/web/test_openapi_fuzz.py`` explains.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings

from hub.web import create_web_app
from hub.web.crm_api import ROUTERS

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
OPERATIONS = sorted({(m, r.path) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)
                     for m in r.methods})
RUNS = [(m, p, mode) for m, p in OPERATIONS for mode in (POSITIVE, NEGATIVE)]
SETTINGS = settings(max_examples=20, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture
def api_schema(db, settings, world):
    """The OpenAPI document as the app serves it, over a database holding the organisation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_web_app(db, settings))
    # the token is the test's to send (below); a case "without it" would be sent with it anyway
    schema.config.generation.update(with_security_parameters=False)
    return schema


def test_every_crm_api_operation_is_in_the_document(api_schema):
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= found


@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[f"{m} {p} {mode.value}" for m, p, mode in RUNS])
def test_crm_api_operation_conforms_to_the_openapi_document(api_schema, world, method, path, mode):
    headers = world.auth("crm")

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @SETTINGS
    def check(case: schemathesis.Case) -> None:
        # every check but "valid data is accepted": rules across fields (lines add up to the
        # total, a credit code's check character, an id that exists) are not in JSON Schema,
        # and a 422 or 404 for them is the documented answer
        case.call_and_validate(headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance])

    check()
