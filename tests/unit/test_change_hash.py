"""Change detection hashes: equal for the same record, different for any change a mapping could see."""

from __future__ import annotations

import pytest

from hub.engine.bulk import change_hash, change_hashes, content_hash

RECORD = {"bill": "AR00000001", "customer": "C000001", "amount": "1000.00", "客户": "北京科技第1有限公司",
          "lines": [{"no": 1, "qty": 2.5}], "closed": False, "memo": None}


def test_the_same_record_hashes_alike_whatever_its_key_order() -> None:
    # given the record as one call returns it, and as another call returns it with keys reordered
    reordered = dict(reversed(list(RECORD.items())))
    # when hashed, then the hashes are equal: a vendor reordering keys costs no rewrite
    assert change_hash(RECORD, "1") == change_hash(reordered, "1")


@pytest.mark.parametrize("changed", [
    {**RECORD, "amount": "1000.01"},
    {**RECORD, "memo": float("nan")},  # NaN is not null (JSON would encode both as null)
    {**RECORD, "closed": 0},  # False, 0 and 0.0 are different values to a mapping
    {**RECORD, "closed": 0.0},
    {**RECORD, "lines": [{"no": "1", "qty": 2.5}]},  # a number that became text
    {k: v for k, v in RECORD.items() if k != "memo"},  # a field that disappeared
    {**RECORD, 1: "x"},  # a key 1 is not the key "1"
    {**RECORD, "1": "x"},
])
def test_any_change_a_mapping_could_see_changes_the_hash(changed: dict[object, object]) -> None:
    assert change_hash(changed, "1") != change_hash(RECORD, "1")


def test_a_new_mapping_version_changes_every_hash() -> None:
    assert change_hash(RECORD, "2") != change_hash(RECORD, "1")


def test_records_the_encoder_cannot_take_are_hashed_all_the_same() -> None:
    # given a page with records MessagePack cannot encode (a lone surrogate, an integer past
    # 64 bits, an object of no JSON type) among good ones
    page = [RECORD, {"bill": "AR\udfff"}, {"bill": 10**30}, {"bill": complex(1, 2)}, {"bill": "AR2"}]
    # when the page is hashed, then every record has its hash, the same as hashed alone,
    # and the unencodable ones hash as the exact (repr) hash does
    hashes = change_hashes(page, "1")
    assert hashes == [change_hash(raw, "1") for raw in page]
    assert hashes[1] == content_hash(page[1], "1") and hashes[2] == content_hash(page[2], "1")
    assert len(set(hashes)) == len(page)


def test_a_page_of_plain_records_hashes_like_its_records_one_by_one() -> None:
    page = [{**RECORD, "bill": f"AR{i:08d}"} for i in range(50)]
    assert change_hashes(page, "v3") == [change_hash(raw, "v3") for raw in page]
    assert change_hashes([], "v3") == []
