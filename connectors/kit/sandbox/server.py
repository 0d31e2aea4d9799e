"""Run an ASGI app (a sandbox, the callback receiver) on a free loopback port in a thread.

Tests and the demo use this instead of a subprocess: start-up is ~50 ms and the
sandbox's state object stays inspectable in-process. ``hub sandbox <system>`` uses
uvicorn directly in the foreground instead.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """Handle to a server started by :func:`serve_in_thread`."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    app: Any  # the ASGI app; sandboxes keep their FaultPlan at app.state.faults

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Any, *, port: int | None = None, startup_timeout: float = 10.0) -> RunningServer:
    """Start ``app`` with uvicorn on 127.0.0.1 and return once it accepts connections."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
        lifespan="off", timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    return RunningServer(url=f"http://127.0.0.1:{port}", port=port, server=server, thread=thread, app=app)
