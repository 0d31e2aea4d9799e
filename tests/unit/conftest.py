"""Fixtures the Kingdee unit-test modules share (a module that defines its own wins): one server per
module (seeding costs ~0.1 s at scale 0.01), reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.kingdee.sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def server() -> Iterator[RunningSandbox]:
    with running_sandbox(scale=0.01) as running:
        yield running


@pytest.fixture
def sandbox(server: RunningSandbox) -> RunningSandbox:
    """The module's server with freshly seeded data, no sessions and no faults."""
    server.reset()
    return server
