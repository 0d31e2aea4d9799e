"""A page that loses a race to another writer is written, not quarantined.

Two ERPs' customer syncs at once may both create the golden customer of one company (one
credit code, ``uq_customer_credit_code``): the second insert waits for the first writer's
commit and then violates the unique index. The page must look again and link to the
customer the other writer stored, as if it had come second (``hub.engine.isolation``).
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
