"""``hub serve`` in a process of its own, for tests and benchmarks that need a real restart
or a server that does not share the client's interpreter (and GIL).

The process gets the caller's database settings through ``HUB_*`` variables (no other
``HUB_`` variable of the caller's environment leaks in) and sandbox mode, so WeCom's
callbacks take the sandbox's credentials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from connectors.kit.sandbox.server import free_port
from hub.settings import Settings


class HubServe:
    """One ``hub serve`` process on a free port; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, settings: Settings, database_url: str, log_path: Path, *,
                 extra_env: dict[str, str] | None = None, scheme: str = "http", verify: str | bool = True) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify  # a CA file for a self-signed certificate
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(HUB_DATABASE_URL=database_url, HUB_DATABASE_SCHEMA=settings.database_schema,
                   HUB_HOME=str(settings.home), HUB_SANDBOX="1", HUB_LOG_LEVEL="WARNING", **(extra_env or {}))
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--port", str(self.port)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_healthy(self, timeout_s: float = 60.0) -> None:
        """Return once ``/healthz`` answers 200."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=2, trust_env=False, verify=self.verify) as http:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"hub serve exited:\n{self.log_tail()}"
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/healthz").status_code == 200:
                        return
                time.sleep(0.2)
        raise AssertionError(f"hub serve did not become healthy in {timeout_s} s:\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        """The server process's resident memory."""
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down cleanly), SIGKILL if it lingers."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> HubServe:
        try:
            self.wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
