"""The approval lookups' memo (``connectors.kit.approvals.KeyMemo``): each instance read once."""

from __future__ import annotations

from collections import Counter

from connectors.kit.approvals import KeyMemo

# instance id → (key control value, creation time), as a platform would answer a detail read
PLATFORM = {"i1": ("crm-order-1-r1", "2026-01-02"), "i2": ("crm-order-2-r1", "2026-01-01"),
            "i3": ("crm-order-1-r1", "2026-01-01"), "i4": (None, "2026-01-03")}


def reader(reads: Counter[str]):
    def read(instance_id: str) -> tuple[str | None, str]:
        reads[instance_id] += 1
        return PLATFORM[instance_id]
    return read


def test_a_lookup_reads_only_instances_it_has_not_read_and_finds_the_key_oldest_first():
    memo, reads = KeyMemo(), Counter[str]()
    # the first lookup reads what it lists; the next, listing more, reads only the new ones
    assert memo.holding([["i1", "i2"]], "crm-order-1-r1", reader(reads)) == ["i1"]
    assert memo.holding([["i1", "i2"], ["i3", "i4"]], "crm-order-1-r1", reader(reads)) == ["i3", "i1"]
    assert memo.holding([["i4"]], "crm-order-2-r1", reader(reads)) == []
    assert reads == {"i1": 1, "i2": 1, "i3": 1, "i4": 1}


def test_the_memo_is_bounded_and_forgets_the_least_recently_used_first():
    memo, reads = KeyMemo(limit=2), Counter[str]()
    for instance in ("i1", "i2", "i1", "i3", "i1", "i2"):
        memo.facts(instance, reader(reads))
    # i2 was evicted by i3 (i1 used more recently), so it is read again
    assert reads == {"i1": 1, "i2": 2, "i3": 1}
