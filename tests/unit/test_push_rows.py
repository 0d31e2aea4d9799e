"""A task's delivery table: reminders per recipient, and its chat to-do as one row."""

from __future__ import annotations

from hub.web.app import push_rows


def test_a_to_do_shows_as_one_row_in_flight_failed_or_as_synced():
    synced = {"synced": {"id": "task9", "recipient": "0123", "status": "open", "at": "2026-11-28T01:00:00+00:00"},
              "seq": 1}
    rows = push_rows({"dingtalk": {"due:0123": {"state": "sent", "at": "2026-11-28T00:59:00+00:00", "msgid": "1"},
                                   "todo": synced}})
    assert [(r["kind"], r["recipient"], r["state"], r["msgid"]) for r in rows] == [
        ("due", "0123", "sent", "1"), ("todo", "0123", "open", "task9")]
    queued = push_rows({"dingtalk": {"todo": {**synced, "queued": {"at": "x", "seq": 2}}}})[0]
    failed = push_rows({"dingtalk": {"todo": {**synced, "failed": {"at": "y", "error": "DingTalk refused"}}}})[0]
    assert (queued["state"], queued["recipient"]) == ("queued", "0123")
    assert (failed["state"], failed["error"]) == ("failed", "DingTalk refused")
