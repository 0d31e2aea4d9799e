"""A sync process killed with SIGKILL between pages loses nothing and duplicates nothing."""

from __future__ import annotations

from pathlib import Path

from hub.engine import sync_stream
from hub.engine.runs import WHY_ABANDONED
from tests.conftest import rows, scalar
from tests.support.crashes import start_sync, sync_env, wait_for_pages
from tests.support.dispatchers import sigkill
from tests.support.synthetic import RECEIVABLES, SyntheticSource


def test_sigkill_between_pages_then_restart_leaves_every_row_once(db, settings, tmp_path: Path):
    marker = tmp_path / "pages"
    child = start_sync(sync_env(db, tmp_path), marker, receivables=2000)
    try:
        # given the child committed at least three pages of receivables
        assert wait_for_pages(child, marker, 3), "sync child exited before it could be killed"
        # when it is killed without any chance to clean up
        sigkill(child)
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
    # and the killed run, which never recorded how it ended, is closed as abandoned, with the reason
    killed_run, next_run = rows(db, "SELECT status, error, finished_at FROM sync_run WHERE stream = 'receivables' "
                                    "ORDER BY id")
    assert (killed_run.status, killed_run.error) == ("abandoned", WHY_ABANDONED)
    assert killed_run.finished_at is not None and next_run.status == "succeeded"
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'abandoned' AND operation = 'run:receivables'") == 1
