"""A page that loses a race to another writer is written, not quarantined.

Two ERPs' customer syncs at once may both create the golden customer of one company (one
credit code, ``uq_customer_credit_code``): the second insert waits for the first writer's
commit and then violates the unique index. The page must look again and link to the
customer the other writer stored, as if it had come second (``hub.engine.isolation``).

A person merging a record into another customer (``hub.conflicts``) moves the rows that
followed the record's link; a page that looked the old link up before the merge and wrote
after it would leave its rows on the emptied customer. The merge waits for such a page
(``hub.engine.links.hold_customer_links``) and then moves its rows too.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from hub.engine import sync_stream
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, SyntheticSource, synthetic_credit_code


def wait_for_a_blocked_insert(db, timeout_s: float = 30.0) -> None:
    """Until a session of this database waits on a lock (the sync's insert, behind the other writer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO customer%'"):
            return
        time.sleep(0.02)
    raise AssertionError("the sync never waited on the other writer's customer")


def test_a_customer_stored_by_another_writer_between_lookup_and_insert_is_linked_not_quarantined(db):
    # given 10 customers synced, and the source now holding an 11th
    source = SyntheticSource(customers=10, receivables=0, page_size=50)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    source.customers = 11
    new_code = synthetic_credit_code(10)

    # and another writer (another ERP's sync) inserting that company's golden customer, not yet committed
    other = db.engine.connect()
    pending = other.begin()
    theirs = other.execute(sa.text(
        "INSERT INTO customer (name, normalized_name, credit_code) VALUES ('别家录入', '别家录入', :c) RETURNING id"),
        {"c": new_code}).scalar_one()

    # when the sync runs (a full re-read: the page holds stored keys, so it is not taken for all new)
    # and the other writer commits while the sync's insert waits behind it
    reports = []
    worker = threading.Thread(target=lambda: reports.append(
        sync_stream(db, "synthetic", CUSTOMERS, source, full=True)))
    worker.start()
    try:
        wait_for_a_blocked_insert(db)
    finally:
        pending.commit()
        other.close()
    worker.join(timeout=60)

    # then the new record is linked to the customer the other writer stored, and nothing is quarantined
    assert reports and reports[0].counts.quarantined == 0
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0
    assert scalar(db, "SELECT canonical_id FROM external_identity WHERE system = 'synthetic' "
                      "AND object = 'customer' AND external_id = 'C000010'") == theirs
    assert [r.n for r in rows(db, "SELECT count(*) AS n FROM customer WHERE credit_code = :c", c=new_code)] == [1]


def test_a_merge_waits_for_a_page_writing_by_the_old_link_and_moves_its_rows_too(db, monkeypatch):
    from hub.conflicts import resolve_conflict
    from hub.engine import targets
    from tests.support.synthetic import RECEIVABLES

    # given two customers of one source kept apart by an identity conflict (one name, two credit codes)
    conflict, target, before = two_customers_in_conflict(db)

    # and a receivables page of K12 that has looked K12's link up and not yet written
    looked_up, go_on = threading.Event(), threading.Event()
    lookup = targets.customer_ids_for

    def slow_lookup(conn, system, refs, remembered=None):
        found = lookup(conn, system, refs, remembered)
        looked_up.set()
        go_on.wait(timeout=30)
        return found

    monkeypatch.setattr(targets, "customer_ids_for", slow_lookup)
    source = SyntheticSource(customers=1, receivables=1, overrides={0: {"customer": "K12"}})
    syncing = threading.Thread(target=lambda: sync_stream(db, "synthetic", RECEIVABLES, source))
    syncing.start()
    assert looked_up.wait(timeout=30)

    # when a person merges K12 into the first customer meanwhile
    merging = threading.Thread(target=lambda: _merge(db, resolve_conflict, conflict, target))
    merging.start()
    blocked = _waits_on_advisory_lock(db)
    go_on.set()
    syncing.join(timeout=60)
    merging.join(timeout=60)

    # then the merge waited for the page, and the page's bill moved with K12 to the first customer
    assert blocked
    assert scalar(db, "SELECT customer_id FROM receivable WHERE external_id = 'AR00000000'") == target != before


def two_customers_in_conflict(db) -> tuple[int, int, int]:
    """K11 and K12 of ``synthetic``: one name, two credit codes, kept apart by an identity
    conflict; the conflict's id, K11's customer (a merge's target) and K12's."""
    from tests.support.customer_streams import hand_written_customers

    one, two = synthetic_credit_code(11), synthetic_credit_code(12)
    sync_stream(db, "synthetic", hand_written_customers("synthetic"), [
        {"id": "K11", "name": "上海华创电子有限公司", "code": one, "modified": "2026-11-01T00:00:00+00:00"},
        {"id": "K12", "name": "上海华创电子股份有限公司", "code": two, "modified": "2026-11-02T00:00:00+00:00"}])
    conflict = rows(db, "SELECT id FROM identity_conflict")[0].id
    target = scalar(db, "SELECT id FROM customer WHERE credit_code = :c", c=one)
    before = scalar(db, "SELECT id FROM customer WHERE credit_code = :c", c=two)
    return int(conflict), int(target), int(before)


def _merge(db, resolve_conflict, conflict: int, target: int) -> None:
    with db.begin() as conn:
        resolve_conflict(conn, conflict, "merge", actor="test", target_id=target)


def _waits_on_advisory_lock(db, timeout_s: float = 3.0) -> bool:
    """Whether a session of this database comes to wait on an advisory lock within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"):
            return True
        time.sleep(0.02)
    return False


def test_a_page_that_waits_for_a_merge_looks_its_links_up_after_it_and_writes_to_the_target(db):
    from hub.conflicts import resolve_conflict
    from tests.support.synthetic import RECEIVABLES

    # given two customers of one source kept apart by an identity conflict (one name, two credit codes)
    conflict, target, before = two_customers_in_conflict(db)

    # and a person's merge of K12 into the first customer, done but not yet committed
    merging = db.engine.connect()
    transaction = merging.begin()
    try:
        resolve_conflict(merging, conflict, "merge", actor="test", target_id=target)

        # when a receivables page of K12 starts meanwhile (it waits for the lock, then looks K12 up)
        source = SyntheticSource(customers=1, receivables=1, overrides={0: {"customer": "K12"}})
        syncing = threading.Thread(target=lambda: sync_stream(db, "synthetic", RECEIVABLES, source))
        syncing.start()
        blocked = _waits_on_advisory_lock(db)
        transaction.commit()
    finally:
        merging.close()
    syncing.join(timeout=60)

    # then the page waited for the merge and its lookup saw the link repointed: the bill is the target's
    assert blocked
    assert scalar(db, "SELECT customer_id FROM receivable WHERE external_id = 'AR00000000'") == target != before
