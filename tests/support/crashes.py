"""A sync as a separate process, for tests that SIGKILL it between (or inside) pages.

The child syncs the synthetic receivables (``tests.support.synthetic``: the same seed gives the
same rows in every process) into the test's schema, writing how many pages it has committed to
a marker file after each, and pausing ``pause_s`` there so that a kill can land anywhere. The
dispatcher's counterpart is ``tests.support.dispatchers``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from hub.database import Database
from tests.support.dispatchers import ROOT

CHILD = """
import sys, time
from pathlib import Path
from hub.database import open_database
from hub.engine import sync_stream
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

marker, receivables, page_size, pause_s = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
db = open_database()
source = SyntheticSource(customers=50, receivables=receivables, page_size=page_size)
sync_stream(db, "synthetic", CUSTOMERS, source)

def slow(counts):
    marker.write_text(str(counts.pages))
    time.sleep(pause_s)  # a kill may land in here, between two pages, or in the page being written

sync_stream(db, "synthetic", RECEIVABLES, source, on_page=slow)
"""


def sync_env(db: Database, home: Path) -> dict[str, str]:
    """The child's environment: the test's database schema, nothing else of the hub's."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("HUB_")}
    return {**env, "HUB_DATABASE_URL": db.url, "HUB_DATABASE_SCHEMA": db.schema, "HUB_HOME": str(home)}


def start_sync(env: dict[str, str], marker: Path, *, receivables: int, page_size: int = 100,
               pause_s: float = 0.4) -> subprocess.Popen[bytes]:
    """Start the child sync (``marker`` gets its committed page count, from 0)."""
    marker.write_text("0")
    args = [sys.executable, "-c", CHILD, str(marker), str(receivables), str(page_size), str(pause_s)]
    return subprocess.Popen(args, env=env, cwd=ROOT)


def wait_for_pages(child: subprocess.Popen[bytes], marker: Path, pages: int, *, timeout_s: float = 120.0) -> bool:
    """Block until the child reported ``pages`` committed pages (True) or exited (False)."""
    deadline = time.monotonic() + timeout_s
    while int(marker.read_text() or 0) < pages:
        if child.poll() is not None:
            return False
        assert time.monotonic() < deadline, "sync child made no progress"
        time.sleep(0.02)
    return True
