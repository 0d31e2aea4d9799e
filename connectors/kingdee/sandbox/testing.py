"""Helpers for tests and demos: run a Kingdee sandbox on a free port and point a client at it.

    with running_sandbox(scale=0.01) as sandbox:
        client = sandbox.client()
        client.execute_bill_query("BD_Customer", ["FNumber"], limit=5)
        sandbox.state.snapshot("SAL_SaleOrder", "XSDD000001")

The sandbox runs in-process (``connectors.kit.sandbox.serve_in_thread``), so its state stays
inspectable from the test while the client talks real HTTP to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from connectors.kingdee.client import AuthMode, KingdeeClient
from connectors.kingdee.sandbox.app import KingdeeSandbox, create_app
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS
from connectors.kingdee.sandbox.state import KingdeeState
from connectors.kit.sandbox import FaultPlan, RunningServer, serve_in_thread
from hub.calls import CallObserver, ignore_call

TEST_TODAY = dt.date(2025, 6, 30)  # a fixed sandbox date keeps seeded data identical across runs


@dataclass
class RunningSandbox:
    """A started sandbox: its URL, the in-process objects, and a client factory."""

    server: RunningServer
    app: Any
    options: dict[str, Any]

    @property
    def url(self) -> str:
        """Base URL including the ``/k3cloud/`` virtual directory."""
        return self.server.url + "/k3cloud/"

    @property
    def sandbox(self) -> KingdeeSandbox:
        """The sandbox runtime (faults, sessions, credentials)."""
        runtime: KingdeeSandbox = self.app.state.kingdee
        return runtime

    @property
    def state(self) -> KingdeeState:
        """The emulated data centre."""
        return self.sandbox.data

    @property
    def faults(self) -> FaultPlan:
        """The fault plan consulted per request."""
        return self.sandbox.faults

    def reset(self, **overrides: Any) -> None:
        """Swap in a freshly seeded sandbox (same server and port) for the next test.

        Handlers look the runtime up as ``app.state.kingdee`` on every request, so replacing it
        resets data, sessions and faults without restarting uvicorn (which takes ~0.2 s).
        """
        fresh = create_app(**{**self.options, **overrides}).state
        self.app.state.kingdee = fresh.kingdee
        self.app.state.faults = fresh.faults

    def client(
        self, *, auth_mode: AuthMode = "signed", timeout: float = 5.0, observer: CallObserver = ignore_call,
        app_secret: str | None = None, max_concurrent_reads: int | None = None,
    ) -> KingdeeClient:
        """A client configured with the sandbox credentials (optionally a wrong secret, and
        read slots as the runtime gives it)."""
        creds = self.sandbox.credentials
        return KingdeeClient(
            base_url=self.url, acct_id=creds.acct_id, username=creds.username, app_id=creds.app_id,
            app_secret=SecretStr(app_secret or creds.app_secret), lcid=creds.lcid, auth_mode=auth_mode,
            timeout=timeout, observer=observer, max_concurrent_reads=max_concurrent_reads,
        )


@contextmanager
def running_sandbox(
    *, scale: float = 0.01, today: dt.date = TEST_TODAY, faults: FaultPlan | None = None, **options: Any,
) -> Iterator[RunningSandbox]:
    """Start a seeded sandbox in a thread for the duration of the ``with`` block."""
    settings = {"scale": scale, "today": today, "credentials": SANDBOX_CREDENTIALS, **options}
    app = create_app(faults=faults, **settings)
    with serve_in_thread(app) as server:
        yield RunningSandbox(server, app, settings)


__all__ = ["TEST_TODAY", "RunningSandbox", "running_sandbox"]
