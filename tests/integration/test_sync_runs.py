"""A sync run that died is closed as abandoned by the next run; a live one is left alone."""

from __future__ import annotations

import sqlalchemy as sa

from hub.engine import sync_stream
from hub.engine.runs import WHY_ABANDONED, close_abandoned, holding
from tests.conftest import rows
from tests.support.synthetic import RECEIVABLES, SyntheticSource


def _running_row(db, stream: str) -> int:
    with db.begin() as conn:
        return int(conn.execute(sa.text("INSERT INTO sync_run (connector, stream) VALUES ('synthetic', :s) "
                                        "RETURNING id"), {"s": stream}).scalar_one())


def test_a_dead_run_is_abandoned_and_a_live_one_keeps_running(db):
    # given a run whose process is gone (its row says running, nobody holds its lock)
    dead = _running_row(db, "customers")
    # and a run that is alive in another session (it holds its lock)
    alive = _running_row(db, "receipts")
    with db.engine.connect() as other, holding(other.execution_options(isolation_level="AUTOCOMMIT"), alive):
        # when any sync starts
        report = sync_stream(db, "synthetic", RECEIVABLES, SyntheticSource(customers=5, receivables=20, page_size=10))

        # then the dead run is closed with the reason, the live one is not, and the new run succeeded
        status = {r.id: (r.status, r.error) for r in rows(db, "SELECT id, status, error FROM sync_run")}
        assert status[dead] == ("abandoned", WHY_ABANDONED)
        assert status[alive] == ("running", None)
        assert status[report.run_id] == ("succeeded", None)
        audited = rows(db, "SELECT system, operation, detail->>'run_id' AS run_id FROM audit_log "
                           "WHERE outcome = 'abandoned'")
        assert [(a.system, a.operation, a.run_id) for a in audited] == [("synthetic", "run:customers", str(dead))]

    # and once the live run's session lets go without finishing, the next sync closes it too
    sync_stream(db, "synthetic", RECEIVABLES, SyntheticSource(customers=5, receivables=20, page_size=10))
    assert rows(db, "SELECT status FROM sync_run WHERE id = :i", i=alive)[0].status == "abandoned"
    # and no lock of a closed run is left held by the (pooled) session that swept it
    key = "hashtextextended(current_schema() || '|sync-run|' || :i, 0)"
    for run_id in (dead, alive):
        assert rows(db, f"SELECT pg_try_advisory_lock({key}) AS taken, pg_advisory_unlock({key})", i=run_id)[0].taken


def test_a_run_in_progress_is_not_abandoned_by_a_sweep_meanwhile(db):
    swept: list[list[int]] = []

    def sweep_from_another_session(_counts) -> None:
        with db.begin() as conn:
            swept.append(close_abandoned(conn, actor="test"))

    # given a sync under way, when another session sweeps for dead runs after each of its pages
    report = sync_stream(db, "synthetic", RECEIVABLES, SyntheticSource(customers=5, receivables=30, page_size=10),
                         on_page=sweep_from_another_session)

    # then the sweeps found nothing to close, and the run ended as it should
    assert swept and all(found == [] for found in swept)
    assert rows(db, "SELECT status FROM sync_run WHERE id = :i", i=report.run_id)[0].status == "succeeded"
