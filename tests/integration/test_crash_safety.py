"""A sync process killed with SIGKILL between pages loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.engine import sync_stream
from tests.conftest import rows, scalar
from tests.support.synthetic import RECEIVABLES, SyntheticSource

CHILD = """
import sys, time
from pathlib import Path
from hub.database import open_database
from hub.engine import sync_stream
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

marker = Path(sys.argv[1])
db = open_database()
source = SyntheticSource(customers=50, receivables=2000, page_size=100)
sync_stream(db, "synthetic", CUSTOMERS, source)

def slow(counts):
    marker.write_text(str(counts.pages))
    time.sleep(0.4)  # the parent kills us in here, between two pages

sync_stream(db, "synthetic", RECEIVABLES, source, on_page=slow)
"""


def test_sigkill_between_pages_then_restart_leaves_every_row_once(db, settings, tmp_path: Path):
    marker = tmp_path / "pages"
    env = {**os.environ, "HUB_DATABASE_URL": db.url, "HUB_DATABASE_SCHEMA": db.schema, "HUB_HOME": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], env=env, cwd=Path(__file__).parents[2])
    try:
        # given the child committed at least three pages of receivables
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text() and int(marker.read_text()) >= 3):
            assert child.poll() is None, "sync child exited before it could be killed"
            assert time.monotonic() < deadline, "sync child made no progress"
            time.sleep(0.05)
        # when it is killed without any chance to clean up
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()

    committed = scalar(db, "SELECT count(*) FROM receivable")
    cursor = scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'")
    assert 300 <= committed < 2000, committed
    # the cursor covers exactly the committed rows: it moved in the same transactions
    source = SyntheticSource(customers=50, receivables=2000, page_size=100)
    assert cursor == source.receivable_row(committed - 1)["modified"]

    # when the sync is restarted
    report = sync_stream(db, "synthetic", RECEIVABLES, source)

    # then every source row is present exactly once and the cursor is at the end
    assert report.counts.inserted == 2000 - committed
    assert scalar(db, "SELECT count(*) FROM receivable") == 2000
    assert scalar(db, "SELECT count(DISTINCT external_id) FROM receivable") == 2000
    assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == source.receivable_row(1999)[
        "modified"]
    killed_run = rows(db, "SELECT status FROM sync_run WHERE stream = 'receivables' ORDER BY id")[0]
    assert killed_run.status == "running"  # the killed run never finished; the next one did
