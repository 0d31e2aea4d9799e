"""Fixtures of the CRM API tests: the web app over the test's own schema, served over real
HTTP by uvicorn in a thread, with the organisation of :mod:`tests.support.crm_world`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connectors.kit.sandbox import serve_in_thread
from hub.database import Database
from hub.settings import Settings
from hub.web import create_web_app
from tests.support.crm_world import World, build_world


@pytest.fixture
def world(db: Database) -> World:
    """The organisation, customers and tokens."""
    return build_world(db)


@pytest.fixture
def api(db: Database, settings: Settings, world: World) -> Iterator[httpx.Client]:
    """An HTTP client of the app served on a free port (no credential by default)."""
    with serve_in_thread(create_web_app(db, settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        yield client
