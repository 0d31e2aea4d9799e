"""What the audit keeps of a text or a detail tree: personal data masked in linear time,
texts cut to a few KB, containers bounded."""

from __future__ import annotations

import time

import pytest

from hub.audit import MAX_ITEMS, MAX_TEXT, _audit_tree, audit_text, mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("客户手机 13800138000 已停机", "客户手机 138****8000 已停机"),
        ("+8613912345678", "+86139****5678"),
        ("8613912345678 / +86 139-1234", "86139****5678 / +86 139-1234"),
        ("138001380001", "138001380001"),  # 12 digits: not a mobile
        ("联系 zhang.san@corp.cn 或 x+y@a.co", "联系 z***@corp.cn 或 x***@a.co"),
        ("mail:li@sub.example.com.cn;", "mail:l***@sub.example.com.cn;"),
        ("a@b", "a@b"),  # no domain suffix
        ("wmAAA-nonce-" + "n" * 100, "wmAAA-nonce-" + "n" * 100),
    ],
)
def test_mobiles_and_email_local_parts_are_masked(text, masked):
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "hostile",
    ["n" * 1_000_000, "a@" + "b" * 1_000_000, ("x@" + "1" * 50) * 20_000, "a@" + "b." * 500_000,
     "1" * 1_000_000, "ab.c@" * 200_000],
    ids=["1MB-run", "at-then-run", "many-ats", "dotted-domain", "digits", "many-addresses"],
)
def test_masking_is_linear(hostile):
    # a 60 KB nonce took 16.6 s with the old pattern (quadratic); a linear one masks 1 MB in tens of ms
    started = time.monotonic()
    mask_personal_data(hostile)
    assert time.monotonic() - started < 5  # generous: the shared machine may be busy


def test_long_text_is_cut_and_says_how_long_it_was():
    kept = audit_text("x" * 700_000)
    assert kept == "x" * MAX_TEXT + "…[truncated, 700000 chars]"


def test_an_address_or_mobile_straddling_the_cut_is_masked_before_cutting():
    mobile_at_cut = "x" * (MAX_TEXT - 5) + "13800138000" + "y" * 5000
    assert "3800" not in audit_text(mobile_at_cut)[MAX_TEXT - 5:MAX_TEXT]
    assert audit_text(mobile_at_cut).startswith("x" * (MAX_TEXT - 5) + "138**")
    email_at_cut = "x " + "z" * (MAX_TEXT - 10) + "@corp.example.cn" + " " * 5000
    assert audit_text(email_at_cut).startswith("x z***@corp.")


def test_detail_trees_are_bounded():
    tree = {"many": list(range(1000)), "keys": {f"k{i}": i for i in range(500)}, "deep": {"a": {"b": {"c": {
        "d": {"e": {"f": {"g": {"h": {"i": "too deep"}}}}}}}}}, "mobile": "13800138000"}
    kept = _audit_tree(tree)
    assert kept["many"][:3] == [0, 1, 2] and len(kept["many"]) == MAX_ITEMS + 1
    assert kept["many"][-1] == f"…[{1000 - MAX_ITEMS} more items]"
    assert len(kept["keys"]) == MAX_ITEMS + 1 and kept["keys"]["…"] == f"[{500 - MAX_ITEMS} more keys]"
    assert "too deep" not in str(kept["deep"])
    assert kept["mobile"] == "138****8000"
