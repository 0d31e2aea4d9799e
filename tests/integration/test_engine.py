"""The sync engine's guarantees, on a real Postgres, with the synthetic source."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from hub.engine import sync_stream
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource, map_synthetic_receivable


def test_first_sync_inserts_everything_and_a_resync_writes_nothing(db):
    # given a source with 20 customers and 300 receivables
    source = SyntheticSource(customers=20, receivables=300, page_size=100)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    # when receivables are synced twice, the second time with --full
    first = sync_stream(db, "synthetic", RECEIVABLES, source)
    second = sync_stream(db, "synthetic", RECEIVABLES, source, full=True)

    # then the first run inserted every row, and the second found them all unchanged
    assert (first.counts.read, first.counts.inserted, first.counts.updated) == (300, 300, 0)
    assert (second.counts.read, second.counts.inserted, second.counts.updated, second.counts.unchanged) == (
        300, 0, 0, 300)
    assert scalar(db, "SELECT count(*) FROM receivable") == 300
    assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == source.receivable_row(299)[
        "modified"]


def test_changed_records_are_updated_and_only_they_are_written(db):
    source = SyntheticSource(customers=10, receivables=100, page_size=40)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)

    # when three receivables change at the source
    source.changed_ids = {5, 50, 99}
    report = sync_stream(db, "synthetic", RECEIVABLES, source, full=True)

    # then exactly those three rows are rewritten
    assert (report.counts.updated, report.counts.unchanged, report.counts.inserted) == (3, 97, 0)
    amounts = dict(rows(db, "SELECT bill_number, amount FROM receivable WHERE bill_number IN ('AR00000005', 'AR00000006')"))
    assert amounts["AR00000005"] == __import__("decimal").Decimal(source.receivable_row(5)["amount"])


def test_a_page_mixing_valid_and_invalid_records_stores_the_valid_and_quarantines_the_rest(db):
    # given every 10th receivable is invalid (alternately a negative open amount / unknown currency)
    source = SyntheticSource(customers=10, receivables=100, page_size=100, bad_every=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    report = sync_stream(db, "synthetic", RECEIVABLES, source)

    # then 90 stored, 10 quarantined with reasons and raw payloads, nothing lost
    assert (report.counts.read, report.counts.inserted, report.counts.quarantined) == (100, 90, 10)
    assert scalar(db, "SELECT count(*) FROM receivable") == 90
    quarantined = rows(db, "SELECT source_ref, reason, payload FROM quarantine ORDER BY source_ref")
    assert len(quarantined) == 10
    assert {q.source_ref for q in quarantined} == {f"AR{i:08d}" for i in range(9, 100, 10)}
    reasons = {q.source_ref: q.reason for q in quarantined}
    assert "unknown currency 'XYZ'" in reasons["AR00000019"]
    assert "open_amount" in reasons["AR00000009"] and "negative" in reasons["AR00000009"]
    assert all(q.payload["bill"] == q.source_ref for q in quarantined)
    assert scalar(db, "SELECT counts->>'quarantined' FROM sync_run WHERE stream = 'receivables'") == "10"


def test_receivables_of_unknown_customers_are_quarantined_not_dropped(db):
    # given customers were never synced
    source = SyntheticSource(customers=5, receivables=20, page_size=20)

    report = sync_stream(db, "synthetic", RECEIVABLES, source)

    assert report.counts.quarantined == 20
    assert scalar(db, "SELECT count(*) FROM quarantine WHERE reason LIKE 'record % of page 1: customer_ref: "
                      "no customer % from synthetic is known to the hub%'") == 20

    # when the customers arrive and the quarantine is retried, every row is accepted
    from hub.engine import retry_quarantined

    sync_stream(db, "synthetic", CUSTOMERS, source)
    counts = retry_quarantined(db, "synthetic", RECEIVABLES)
    assert (counts.read, counts.inserted, counts.quarantined) == (20, 20, 0)
    assert scalar(db, "SELECT count(*) FROM quarantine WHERE status = 'open'") == 0
    assert scalar(db, "SELECT count(*) FROM receivable") == 20


def test_every_batch_is_audited(db):
    source = SyntheticSource(customers=5, receivables=50, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    batches = rows(db, "SELECT detail FROM audit_log WHERE operation = 'batch:receivables' ORDER BY id")
    assert [b.detail["read"] for b in batches] == [20, 20, 10]


def test_the_all_new_fast_path_falls_back_to_a_merge_when_a_key_exists_after_all(db):
    # given a receivable that another writer inserted after the engine looked the keys up
    import datetime as dt

    from hub.engine.bulk import merge_rows

    cols = ["source_system", "external_id", "content_hash", "customer_id", "bill_number", "bill_date", "due_date",
            "currency", "amount", "open_amount"]
    with db.begin() as conn:
        customer = conn.execute(__import__("sqlalchemy").text(
            "INSERT INTO customer (name, normalized_name) VALUES ('甲', '甲') RETURNING id")).scalar_one()
    row = lambda n, h: ("s", f"AR{n}", h, customer, f"AR{n}", dt.date(2026, 1, 1), dt.date(2026, 2, 1), "CNY", 10, 5)  # noqa: E731
    with db.begin() as conn:
        merge_rows(conn, "receivable", cols, [row(1, "h1")], key=["source_system", "external_id"])

    # when a page assumed all-new arrives with that key and a new one
    with db.begin() as conn:
        result = merge_rows(conn, "receivable", cols, [row(1, "h1"), row(2, "h2")],
                            key=["source_system", "external_id"], assume_new=True)

    # then nothing failed, nothing doubled: one unchanged, one inserted
    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 1)
    assert scalar(db, "SELECT count(*) FROM receivable") == 2


def test_a_page_looked_up_as_all_new_is_merged_when_another_writer_stored_one_of_its_keys_meanwhile(db):
    from hub.engine.sync import fingerprinted, prepare_page, write_page

    # given a page of 20 receivables prepared while none of them was stored (the COPY-only path)
    source = SyntheticSource(customers=5, receivables=20, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    page = next(RECEIVABLES.read_pages(source, None))
    with db.engine.connect() as conn:
        prepared = prepare_page(conn, "synthetic", RECEIVABLES, next(fingerprinted(RECEIVABLES, iter([page]))))
    assert prepared.all_new
    # and another writer storing the first of them before the page is written
    sync_stream(db, "synthetic", RECEIVABLES, SyntheticSource(customers=5, receivables=1, page_size=20))

    # when the page is written
    with db.begin() as conn:
        counts = write_page(conn, "synthetic", RECEIVABLES, prepared, None)

    # then it is merged: nothing failed, nothing quarantined, nothing doubled
    assert (counts.inserted, counts.updated, counts.unchanged, counts.quarantined) == (19, 0, 1, 0)
    assert scalar(db, "SELECT count(*) FROM receivable") == 20
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0


def _page_against(db, keys: list[str], changed_every: int = 3) -> tuple[list[str], set[str], int]:
    """Hashes for ``keys``: the stored hash for most stored keys, another for every
    ``changed_every``-th; and the changed keys and stored count the engine must find."""
    stored = dict(rows(db, "SELECT external_id, content_hash FROM receivable"))
    hashes = [stored[key] if key in stored and i % changed_every else f"other-{i}" for i, key in enumerate(keys)]
    changed = {key for key, digest in zip(keys, hashes, strict=True) if stored.get(key) != digest}
    return hashes, changed, sum(key in stored for key in keys)


def test_the_key_range_comparison_answers_exactly_as_probing_each_key_does(db, monkeypatch):
    from hub.engine import targets
    from hub.engine.bulk import fetch_in_key_range, key_range
    from hub.engine.targets import HashCheck, changed_keys, customer_ids_for

    # given stored receivables AR…00 to AR…39 and customers C000000 to C000004
    source = SyntheticSource(customers=5, receivables=40, page_size=40)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    close = [f"AR{i:08d}" for i in range(30, 45)] + ["AR00000029x"]  # 10 stored rows in their range
    spread = [*close, "AR00000005"]  # 40 stored rows in their range: more than twice the keys
    ranged = ("SELECT t.external_id, t.content_hash FROM receivable t WHERE t.source_system = %(s)s AND "
              f"{key_range('t.external_id')} LIMIT %(limit)s")
    # and a record of which comparisons ran: a range (given up when too wide) or probes
    ways: list[str] = []
    compare = targets._compare

    def recorded(*args, ranged=True, **kwargs):
        answer = compare(*args, ranged=ranged, **kwargs)
        ways.append("probes" if not ranged else "range" if answer is not None else "range given up")
        return answer

    monkeypatch.setattr(targets, "_compare", recorded)

    # when a page of each is compared with the store, without a stamp range
    answers = {}
    with db.engine.connect() as conn:
        for name, keys in (("close", close), ("spread", spread)):
            hashes, expected_changed, expected_held = _page_against(db, keys)
            answers[name] = (changed_keys(conn, "receivable", "synthetic", keys, hashes),
                             HashCheck(expected_changed, expected_held))
        in_range = fetch_in_key_range(conn, ranged, {"s": "synthetic"}, close)
        too_wide = fetch_in_key_range(conn, ranged, {"s": "synthetic"}, spread)
        customers = customer_ids_for(conn, "synthetic", {"C000001", "C000003", "C999999"})

    # then close keys are compared over their range, spread ones key by key, and both answer
    # exactly: the keys whose stored hash differs or that are not stored, and how many are
    assert ways == ["range", "range given up", "probes"]
    assert answers["close"][0] == answers["close"][1] and answers["close"][0].held == 10
    assert answers["spread"][0] == answers["spread"][1] and answers["spread"][0].held == 11
    assert {"AR00000029x", "AR00000040"} <= answers["close"][0].changed
    # and the key range of other lookups (customers) still answers for close keys only
    assert in_range is not None and too_wide is None and len(in_range) == 10
    assert set(customers) == {"C000001", "C000003"}


def test_a_page_of_new_keys_is_all_changed_and_none_held(db):
    from hub.engine.targets import HashCheck, changed_keys

    source = SyntheticSource(customers=5, receivables=10, page_size=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    keys = [f"AR{i:08d}" for i in range(100, 120)]
    low, high = "2030-01-01", "2030-12-31"

    with db.engine.connect() as conn:
        by_stamp = changed_keys(conn, "receivable", "synthetic", keys, ["h"] * 20, (low, high))
        by_key = changed_keys(conn, "receivable", "synthetic", keys, ["h"] * 20)
        empty = changed_keys(conn, "receivable", "synthetic", [], [])

    assert by_stamp == by_key == HashCheck(set(keys), 0)
    assert empty == HashCheck(set(), 0)


def test_a_comparison_refuses_hashes_it_could_not_send_apart(db):
    import pytest

    from hub.engine.targets import changed_keys

    # given hashes sent as one comma-separated text: a comma in one, or one hash too few
    with db.engine.connect() as conn:
        for keys, hashes in ((["AR1", "AR2"], ["a,b", "c"]), (["AR1", "AR2"], ["a"])):
            # when compared, then refused before anything is sent
            with pytest.raises(ValueError, match=r"commas|one each"):
                changed_keys(conn, "receivable", "synthetic", keys, hashes)


def test_an_unchanged_resync_keeps_one_audit_row_per_page_in_order_and_ends_at_the_last_cursor(db):
    from hub.engine.sync import QUIET_PAGES_PER_COMMIT

    # given 45 pages stored, then one record changed on page 30 (quiet pages before and after it)
    pages = QUIET_PAGES_PER_COMMIT * 2 + 5
    source = SyntheticSource(customers=5, receivables=pages * 2, page_size=2)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    source.changed_ids = {58}
    seen: list[int] = []

    # when everything is read again
    report = sync_stream(db, "synthetic", RECEIVABLES, source, full=True, on_page=lambda c: seen.append(c.pages))

    # then every page is counted once, in order, and audited with its own counts and cursor
    assert (report.counts.read, report.counts.updated, report.counts.unchanged, report.counts.pages) == (
        pages * 2, 1, pages * 2 - 1, pages)
    assert seen == list(range(1, pages + 1))
    batches = [r.detail for r in rows(db, "SELECT detail FROM audit_log WHERE operation = 'batch:receivables' "
                                          "AND detail ->> 'run_id' = :run ORDER BY id", run=str(report.run_id))]
    assert [b["cursor_after"] for b in batches] == [source.receivable_row(2 * n + 1)["modified"] for n in range(pages)]
    assert [b["updated"] for b in batches] == [1 if n == 29 else 0 for n in range(pages)]
    assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == source.receivable_row(
        pages * 2 - 1)["modified"]


def test_a_read_failure_mid_stream_keeps_the_pages_before_it_and_counts_them(db):
    from hub.contracts import StreamSpec

    source = SyntheticSource(customers=5, receivables=500, page_size=100)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    def failing_pages(src, cursor):
        for n, page in enumerate(RECEIVABLES.read_pages(src, cursor)):
            if n == 3:
                raise ConnectionError("ERP went away after three pages")
            yield page

    flaky = StreamSpec(name="receivables", source_object="receivable", target="receivable", key_field="bill",
                       cursor_field="modified", read_pages=failing_pages, map_record=RECEIVABLES.map_record)
    import pytest

    with pytest.raises(ConnectionError):
        sync_stream(db, "synthetic", flaky, source)

    run = rows(db, "SELECT status, counts, error FROM sync_run WHERE stream = 'receivables'")[0]
    assert run.status == "failed" and "ERP went away" in run.error
    assert run.counts["inserted"] == 300 == scalar(db, "SELECT count(*) FROM receivable")
    assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == source.receivable_row(299)[
        "modified"]
    # the next run picks up exactly where the committed pages end
    assert sync_stream(db, "synthetic", RECEIVABLES, source).counts.inserted == 200


# --- change stamps: the re-sync reads stored hashes by stamp range, and is never wrong for it ---

def _stream_over(pages_of_records: list[list[dict]]):
    """A receivables stream that serves these pages as they are (the test decides their order)."""
    from hub.contracts import Page, StreamSpec

    pages = [Page(records, max(r["modified"] for r in records)) for records in pages_of_records]
    return StreamSpec(name="receivables", source_object="receivable", target="receivable", key_field="bill",
                      cursor_field="modified", read_pages=lambda _src, _cursor: iter(pages),
                      map_record=RECEIVABLES.map_record)


def test_each_stored_bill_keeps_the_source_change_stamp_it_was_read_with(db):
    source = SyntheticSource(customers=5, receivables=50, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    sync_stream(db, "synthetic", RECEIVABLES, source)

    stamps = dict(rows(db, "SELECT external_id, source_cursor FROM receivable"))
    assert stamps == {f"AR{i:08d}": source.receivable_row(i)["modified"] for i in range(50)}


def test_a_bill_whose_stamp_moved_is_found_by_key_and_updated_not_inserted_again(db):
    # given 60 bills stored in three pages
    import datetime as dt

    source = SyntheticSource(customers=5, receivables=60, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    records = [source.receivable_row(i) for i in range(60)]
    sync_stream(db, "synthetic", _stream_over([records[:20], records[20:40], records[40:]]), None)

    # when bills 3 and 25 change at the source, get a later stamp and so arrive on the last page
    later = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    moved = {3: {**records[3], "open": "1.00", "modified": later.isoformat()},
             25: {**records[25], "open": "2.00", "modified": (later + dt.timedelta(seconds=1)).isoformat()}}
    unchanged = [r for i, r in enumerate(records) if i not in moved]
    report = sync_stream(db, "synthetic", _stream_over([unchanged[:20], unchanged[20:40], [*unchanged[40:],
                                                        *moved.values()]]), None, full=True)

    # then both are updated in place, with their new stamp; nothing is doubled
    assert (report.counts.inserted, report.counts.updated, report.counts.unchanged) == (0, 2, 58)
    assert scalar(db, "SELECT count(*) FROM receivable") == 60
    bill3 = rows(db, "SELECT open_amount, source_cursor FROM receivable WHERE external_id = 'AR00000003'")[0]
    assert (str(bill3.open_amount), bill3.source_cursor) == ("1.00", later.isoformat())


def test_pages_out_of_stamp_order_still_find_every_stored_bill(db):
    # given 90 bills stored, then served again in pages whose stamps interleave (page k holds
    # bills k, k+3, k+6, …): each page's stamp range spans nearly the whole table
    source = SyntheticSource(customers=5, receivables=90, page_size=30)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    records = [source.receivable_row(i) for i in range(90)]

    report = sync_stream(db, "synthetic", _stream_over([records[k::3] for k in range(3)]), None, full=True)

    # then every bill is recognised as unchanged: nothing written, nothing doubled
    assert (report.counts.read, report.counts.inserted, report.counts.updated, report.counts.unchanged) == (
        90, 0, 0, 90)
    assert scalar(db, "SELECT count(*) FROM receivable") == 90


def test_the_stamp_range_comparison_answers_exactly_as_the_key_comparison_does(db):
    from hub.engine.targets import HashCheck, changed_keys

    # given bills 0 to 39 stored, and a page of bills 10 to 29 (one in three changed) and one
    # not stored, whose stamp range covers bills 15 to 35 only
    source = SyntheticSource(customers=5, receivables=40, page_size=40)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    keys = [f"AR{i:08d}" for i in range(10, 30)] + ["AR-not-stored"]
    hashes, expected_changed, expected_held = _page_against(db, keys)
    low, high = source.receivable_row(15)["modified"], source.receivable_row(35)["modified"]

    # when compared by key, and by stamp range (then by key for the bills outside it)
    with db.engine.connect() as conn:
        by_key = changed_keys(conn, "receivable", "synthetic", keys, hashes)
        by_range = changed_keys(conn, "receivable", "synthetic", keys, hashes, (low, high))

    # then both find the same changed and missing bills, and the same 20 stored
    assert by_range == by_key == HashCheck(expected_changed, expected_held)
    assert expected_held == 20 and "AR-not-stored" in expected_changed and len(expected_changed) == 8


def test_pages_validated_at_once_store_what_the_record_by_record_mapping_stores(db):
    # given receivables of which a few are invalid (so some pages give up the page path)
    source = SyntheticSource(customers=10, receivables=200, page_size=25, bad_every=70)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    stored = ("SELECT external_id, content_hash, source_cursor, customer_id, bill_number, bill_date, due_date, "
              "currency, amount, open_amount, status FROM receivable ORDER BY external_id")
    quarantined = "SELECT source_ref, reason, payload_hash FROM quarantine ORDER BY source_ref"
    outcomes = []
    # when they are synced record by record, and again from scratch with pages mapped at once
    for stream in (dataclasses.replace(RECEIVABLES, map_record=map_synthetic_receivable), RECEIVABLES):
        report = sync_stream(db, "synthetic", stream, source)
        outcomes.append((report.counts, rows(db, stored), rows(db, quarantined)))
        with db.begin() as conn:
            for table in ("receivable", "quarantine", "sync_cursor"):
                conn.execute(sa.text(f"DELETE FROM {table}"))

    # then both store the same rows and quarantine the same records for the same reasons
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0].inserted == 198 and outcomes[1][0].quarantined == 2


def test_rows_stored_with_the_old_blake2b_hashes_are_rewritten_once_then_unchanged(db, monkeypatch):
    import hashlib

    import msgspec

    from hub.engine import changes
    from hub.engine.bulk import change_hash

    # given 60 bills stored by an engine that still hashed records with msgpack + blake2b-128
    # (the change hash format before CHANGE_HASH_FORMAT)
    source = SyntheticSource(customers=5, receivables=60, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    version, encode = RECEIVABLES.mapping_version, msgspec.msgpack.Encoder(order="deterministic").encode
    records = {raw["bill"]: raw for raw in (source.receivable_row(i) for i in range(60))}
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE receivable SET content_hash = :h WHERE external_id = :x"), [
            {"x": bill, "h": hashlib.blake2b(f"{version}\x00".encode() + encode(raw), digest_size=16).hexdigest()}
            for bill, raw in records.items()])
    values = ("SELECT external_id, source_cursor, customer_id, bill_number, bill_date, due_date, currency, amount, "
              "open_amount, status, fetched_at FROM receivable ORDER BY external_id")
    before = rows(db, values)
    # and someone listening for receivable changes
    notified: list[object] = []
    monkeypatch.setitem(changes._LISTENERS, "receivable", [lambda conn, batch: notified.extend(batch)])

    # when the upgraded engine syncs them twice
    upgrade = sync_stream(db, "synthetic", RECEIVABLES, source, full=True)
    after = sync_stream(db, "synthetic", RECEIVABLES, source, full=True)

    # then the first sync rewrites every bill once, with the values it held and the new hash,
    # and tells no listener of a change, nor moves fetched_at (what the receivable_changed
    # trigger reads); the second finds every bill unchanged
    assert (upgrade.counts.inserted, upgrade.counts.updated, upgrade.counts.unchanged) == (0, 60, 0)
    assert (after.counts.inserted, after.counts.updated, after.counts.unchanged) == (0, 0, 60)
    assert rows(db, values) == before and notified == []
    assert dict(rows(db, "SELECT external_id, content_hash FROM receivable")) == {
        bill: change_hash(raw, version) for bill, raw in records.items()}


def test_a_rewrite_that_changes_only_the_hash_fires_no_receivable_changed_rule_and_a_real_change_does(db):
    import dataclasses
    import datetime as dt

    from hub.rules.automation import BusinessCalendar, RuleEnv, apply
    from hub.rules.automation.model import parse_rules
    from hub.rules.reminders import ReminderPolicy
    from hub.settings import LeadSettings, OrderSettings

    book = parse_rules({"rules": [{"name": "bill-changed", "trigger": {"event": "receivable_changed"},
                                   "actions": [{"do": "create_task", "title": "核对：{name}", "kind": "check"}]}]},
                       "test")
    env = RuleEnv(calendar=BusinessCalendar(book.calendar, "Asia/Shanghai"), leads=LeadSettings(),
                  orders=OrderSettings(), reminders=ReminderPolicy(), finance_recipients=())
    fired = "SELECT count(*) FROM rule_firing WHERE rule = 'bill-changed'"

    # given 30 bills synced, and a rule on receivable_changed active from then on
    source = SyntheticSource(customers=5, receivables=30, page_size=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    sync_stream(db, "synthetic", RECEIVABLES, source)
    apply(db.engine, book, dt.datetime.now(dt.UTC), env)

    # when a new mapping version rewrites every bill with the values it held
    bumped = dataclasses.replace(RECEIVABLES, mapping_version=RECEIVABLES.mapping_version + "-next")
    rewrite = sync_stream(db, "synthetic", bumped, source, full=True)
    apply(db.engine, book, dt.datetime.now(dt.UTC), env)

    # then every bill was rewritten, and the rule fired for none
    assert rewrite.counts.updated == 30 and scalar(db, fired) == 0

    # when one bill really changes
    source.changed_ids.add(7)
    changed = sync_stream(db, "synthetic", bumped, source, full=True)
    apply(db.engine, book, dt.datetime.now(dt.UTC), env)

    # then the rule fires for that bill alone
    assert changed.counts.updated == 1 and scalar(db, fired) == 1


def test_customer_records_are_compared_with_the_hash_their_external_identity_keeps(db):
    from hub.engine.targets import HashCheck, changed_keys

    # given 10 customers stored (their hashes kept on external_identity, not on customer)
    source = SyntheticSource(customers=10, receivables=0, page_size=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    stored = dict(rows(db, "SELECT external_id, content_hash FROM external_identity WHERE object = 'customer'"))
    keys = [*sorted(stored)[:6], "C-not-stored"]
    hashes = [*(stored[key] for key in keys[:4]), "other", "other", "other"]

    # when a page of 4 unchanged, 2 changed and 1 new customer is compared, with and without stamps
    with db.engine.connect() as conn:
        by_key = changed_keys(conn, "customer", "synthetic", keys, hashes)
        with_stamps = changed_keys(conn, "customer", "synthetic", keys, hashes, ("0", "9"))

    # then the changed and the new are found, and the 6 stored counted (customers carry no stamp)
    assert by_key == with_stamps == HashCheck(set(keys[4:]), 6)


def test_a_run_that_inserted_many_rows_leaves_the_planner_statistics_of_what_it_wrote(db, monkeypatch):
    from hub.engine import sync

    # given a run counted as large (the threshold lowered to this test's size)
    monkeypatch.setattr(sync, "ANALYZE_AFTER_ROWS", 40)
    source = SyntheticSource(customers=5, receivables=60, page_size=20)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    # when it loads 60 bills
    sync_stream(db, "synthetic", RECEIVABLES, source)

    # then the planner knows the table's size and the shape of the columns later queries
    # filter and group on (the receivables summary, profile pages, rules), not an empty table
    assert scalar(db, "SELECT reltuples FROM pg_class WHERE oid = CAST('receivable' AS regclass)") == 60
    analyzed = {row.attname: row.n_distinct for row in rows(db, (
        "SELECT attname, n_distinct FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'receivable'"))}
    assert {"customer_id", "currency", "due_date", "open_amount", "fetched_at"} <= set(analyzed)
    assert analyzed["customer_id"] == 5
