"""A run remembers the customer links its pages looked up, and forgets them when a link moves.

``hub.engine.links``: a page writes receivables, receipts, orders and contacts by the golden
customer its source's customer id is linked to. A run looks each id up once, and looks again
after any change that could make a remembered answer wrong (a link repointed, re-keyed or
deleted: the links' version, moved by triggers, migration 0024).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from hub.engine import links as links_module
from hub.engine import sync_stream
from hub.engine.links import CustomerLinks, hold_customer_links
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource


def customer_of(db, ref: str) -> int:
    return int(scalar(db, "SELECT canonical_id FROM external_identity WHERE system = 'synthetic' "
                          "AND object = 'customer' AND external_id = :e", e=ref))


def repoint(db, ref: str, customer_id: int) -> None:
    """Link ``ref`` to another customer, as a person's merge does (lock taken, link updated, committed)."""
    with db.begin() as conn:
        hold_customer_links(conn, "synthetic", exclusive=True)
        conn.execute(sa.text("UPDATE external_identity SET canonical_id = :c WHERE system = 'synthetic' "
                             "AND object = 'customer' AND external_id = :e"), {"c": customer_id, "e": ref})


def counting_look_ups(monkeypatch) -> list[int]:
    """How many ids each database look-up of customer links asked for, in order."""
    asked: list[int] = []
    look_up = links_module._look_up

    def counted(conn, system, refs):
        asked.append(len(refs))
        return look_up(conn, system, refs)

    monkeypatch.setattr(links_module, "_look_up", counted)
    return asked


def test_a_run_looks_each_customer_up_once(db, monkeypatch):
    # given 3 customers synced, and 20 receivables over them in 4 pages
    source = SyntheticSource(customers=3, receivables=20, page_size=5)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    asked = counting_look_ups(monkeypatch)
    # when the receivables are synced
    report = sync_stream(db, "synthetic", RECEIVABLES, source)
    # then the first page looked its 3 customers up and no later page looked any up again,
    # and every bill is stored with its customer
    assert report.counts.inserted == 20
    assert asked == [3]
    stored = rows(db, "SELECT r.external_id, r.customer_id FROM receivable r ORDER BY r.external_id")
    assert [c for _, c in stored] == [customer_of(db, f"C{i % 3:06d}") for i in range(20)]


def test_a_link_repointed_between_two_pages_of_a_run_is_looked_up_again(db, monkeypatch):
    # given 3 customers synced, and 20 receivables over them in 4 pages
    source = SyntheticSource(customers=3, receivables=20, page_size=5)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    before, target = customer_of(db, "C000001"), customer_of(db, "C000000")
    asked = counting_look_ups(monkeypatch)
    pages_done = []

    def after_page(counts):
        pages_done.append(counts)
        if len(pages_done) == 1:  # the first page committed, the second not yet written
            repoint(db, "C000001", target)

    # when C000001 is linked to C000000's customer once the first page is written
    sync_stream(db, "synthetic", RECEIVABLES, source, on_page=after_page)
    # then the second page looked its customers up again, and every later bill of C000001 is
    # written to the customer it is linked to now
    assert asked == [3, 3]
    later = rows(db, "SELECT customer_id FROM receivable WHERE external_id = ANY(:bills)",
                 bills=[f"AR{i:08d}" for i in range(5, 20) if i % 3 == 1])
    assert later and {r.customer_id for r in later} == {target}
    assert scalar(db, "SELECT customer_id FROM receivable WHERE external_id = 'AR00000001'") == before


def test_a_page_that_waited_for_a_merge_sees_the_link_the_merge_left(db):
    # given C000001 linked to its customer, and a run that remembers it
    sync_stream(db, "synthetic", CUSTOMERS, SyntheticSource(customers=3, receivables=0))
    before, target = customer_of(db, "C000001"), customer_of(db, "C000000")
    remembered = CustomerLinks("synthetic")
    with db.begin() as conn:
        assert remembered.ids_for(conn, "synthetic", {"C000001"}) == {"C000001": before}
    # and a merge that holds the links and has repointed C000001, not yet committed
    seen: dict[str, int] = {}
    with db.engine.connect() as merge:
        merge_tx = merge.begin()
        try:
            hold_customer_links(merge, "synthetic", exclusive=True)
            merge.execute(sa.text("UPDATE external_identity SET canonical_id = :c WHERE system = 'synthetic' "
                                  "AND object = 'customer' AND external_id = 'C000001'"), {"c": target})

            # when the run's next page asks for C000001 meanwhile (it waits for the merge's lock)
            def next_page() -> None:
                with db.begin() as conn:
                    seen.update(remembered.ids_for(conn, "synthetic", {"C000001"}))

            page = threading.Thread(target=next_page)
            page.start()
            page.join(timeout=0.5)
            assert page.is_alive(), "the page did not wait for the merge"
            merge_tx.commit()
        finally:
            if merge_tx.is_active:
                merge_tx.rollback()
    page.join(timeout=30)
    # then it reads the link as the merge left it, not the one it remembered
    assert seen == {"C000001": target}


def test_a_deleted_link_is_forgotten_and_a_new_one_is_found(db):
    # given a run that remembers C000001 and C000002, and C000009 not linked yet
    source = SyntheticSource(customers=3, receivables=0)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    remembered = CustomerLinks("synthetic")
    with db.begin() as conn:
        found = remembered.ids_for(conn, "synthetic", {"C000001", "C000002", "C000009"})
    assert set(found) == {"C000001", "C000002"}
    # when C000002's link is deleted and C000009 gets one
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM external_identity WHERE system = 'synthetic' AND external_id = 'C000002'"))
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES ('synthetic', 'customer', 'C000009', 'customer', :c)"), {"c": customer_of(db, "C000000")})
    # then the next page finds C000009 and no longer C000002
    with db.begin() as conn:
        found = remembered.ids_for(conn, "synthetic", {"C000001", "C000002", "C000009"})
    assert found == {"C000001": customer_of(db, "C000001"), "C000009": customer_of(db, "C000000")}


def test_a_new_link_or_a_changed_hash_keeps_what_the_run_remembers(db):
    # given a run that remembers C000001
    sync_stream(db, "synthetic", CUSTOMERS, SyntheticSource(customers=3, receivables=0))
    remembered = CustomerLinks("synthetic")
    with db.begin() as conn:
        remembered.ids_for(conn, "synthetic", {"C000001"})
    version = scalar(db, "SELECT version FROM customer_links_version")
    # when a link is added and another's content hash and claims change (a customer re-synced)
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES ('synthetic', 'customer', 'C000009', 'customer', :c)"), {"c": customer_of(db, "C000000")})
        conn.execute(sa.text("UPDATE external_identity SET content_hash = 'x', last_seen = now(), "
                             "canonical_id = canonical_id WHERE external_id = 'C000001'"))
    # then the links' version did not move and C000001 is not looked up again
    assert scalar(db, "SELECT version FROM customer_links_version") == version
    with db.begin() as conn:
        remembered.ids_for(conn, "synthetic", {"C000001"})
    assert remembered.looked_up == 1


def test_memory_past_its_bound_starts_again_and_still_answers_every_id(db):
    # given 6 customers, and a run that may remember 4 links
    sync_stream(db, "synthetic", CUSTOMERS, SyntheticSource(customers=6, receivables=0))
    remembered = CustomerLinks("synthetic", at_most=4)
    first, second = {f"C{i:06d}" for i in range(3)}, {f"C{i:06d}" for i in range(6)}
    with db.begin() as conn:
        # when it is asked for 3, then for all 6
        remembered.ids_for(conn, "synthetic", first)
        found = remembered.ids_for(conn, "synthetic", second)
    # then the second answer is whole
    assert found == {ref: customer_of(db, ref) for ref in second}
