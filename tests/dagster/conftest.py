"""Fixtures of the Dagster tests: the hub's definitions over the test's own schema and sandboxes.

Jobs run in process (``pipelines.in_process.run_job``) on a ``HubResource`` that points
at the test's migrated schema (``db``) and at sandboxes this module starts, so a test can
arm faults in them and read their state, and several runs share one ERP and one WeCom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions

from connectors.kit.sandbox import RunningServer, serve_in_thread
from hub.registry import connector
from hub.runtime import load_sandbox
from hub.settings import OutboxSettings, Settings
from pipelines.definitions import build_definitions
from pipelines.in_process import JobOutcome, run_job
from pipelines.resources import HubResource

KINGDEE_SCALE = 0.02  # 40 customers, 400 orders: the full shape of the ERP in a second


@pytest.fixture
def kingdee_sandbox() -> Iterator[RunningServer]:
    """A small seeded Kingdee K/3 Cloud on a loopback port."""
    with serve_in_thread(load_sandbox(connector("kingdee")).create_app(scale=KINGDEE_SCALE)) as server:
        yield server


@pytest.fixture
def wecom_sandbox() -> Iterator[RunningServer]:
    """The seeded WeCom tenant (40 people, 300 external contacts) on a loopback port."""
    with serve_in_thread(load_sandbox(connector("wecom")).create_app()) as server:
        yield server


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """The test's settings with retries due in milliseconds."""
    return settings.model_copy(update={"outbox": OutboxSettings(max_attempts=8, backoff_initial_s=0.01,
                                                                backoff_max_s=0.05)})


@pytest.fixture
def defs(fast_settings: Settings, db: Any, kingdee_sandbox: RunningServer,
         wecom_sandbox: RunningServer) -> Definitions:
    """The hub's definitions on the test's schema and sandboxes."""
    resource = HubResource.from_settings(
        fast_settings, sandbox_urls={"kingdee": kingdee_sandbox.url, "wecom": wecom_sandbox.url})
    return build_definitions(resource)


@pytest.fixture
def run(defs: Definitions) -> Iterator[Callable[..., JobOutcome]]:
    """``run(job, run_config=None)``: execute a job in process (one ephemeral instance per test)."""
    with DagsterInstance.ephemeral() as instance:
        yield lambda job, **kwargs: run_job(defs, job, instance=instance, **kwargs)
