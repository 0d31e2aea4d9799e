"""The pure rules of sign-in and data protection: masking, the lockout, ``next`` paths,
card links, the OAuth ``state``, and password hashing."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.access.links import card_link, local_path
from hub.access.masking import has_personal_data, mask_email, mask_mobile, mask_record
from hub.access.passwords import (
    WeakPassword,
    hash_password,
    lockout_after_failure,
    needs_rehash,
    verify_password,
)
from hub.web.signin import decode_state, encode_state


@pytest.mark.parametrize(("mobile", "masked"), [
    ("13812345678", "138****5678"),
    ("+86 138 1234 5678", "+86 138****5678"),
    ("8613812345678", "+86 138****5678"),
    ("0571-8888", "******88"),
    ("12", "**"),
    ("", ""),
    (None, None),
])
def test_a_mobile_keeps_its_first_three_and_last_four_digits(mobile, masked):
    assert mask_mobile(mobile) == masked


@pytest.mark.parametrize(("email", "masked"), [
    ("zhangsan@corp.cn", "z***@corp.cn"),
    ("a@b.co", "a***@b.co"),
    ("no-at-sign", "***"),
    ("@corp.cn", "***"),
    (None, None),
])
def test_an_email_keeps_its_first_character_and_domain(email, masked):
    assert mask_email(email) == masked


def test_a_record_is_masked_field_by_field_and_nothing_else_changes():
    record = {"name": "赵采购", "mobile": "13812345678", "email": "zhao@corp.cn", "title": "13812345678"}
    assert mask_record(record) == {"name": "赵采购", "mobile": "138****5678", "email": "z***@corp.cn",
                                   "title": "13812345678"}
    assert has_personal_data(record) and not has_personal_data({"name": "x", "mobile": None, "email": ""})


def test_a_login_locks_at_the_fifth_failure_and_each_further_one_extends_it():
    now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
    states = []
    count = 0
    for _ in range(6):
        state = lockout_after_failure(count, now, max_failures=5, lock_minutes=15)
        count = state.failed_attempts
        states.append(state.locked_until)
    assert states[:4] == [None] * 4
    assert states[4] == states[5] == now + dt.timedelta(minutes=15)


@pytest.mark.parametrize(("value", "expected"), [
    ("/customers/12", "/customers/12"),
    ("/customers?q=%E6%B5%8B", "/customers?q=%E6%B5%8B"),
    ("https://evil.example/", "/customers"),
    ("//evil.example", "/customers"),
    ("/\\evil.example", "/customers"),
    ("/login?next=/x", "/customers"),
    ("/auth/wecom?code=1", "/customers"),
    ("javascript:alert(1)", "/customers"),
    ("/customers/1\r\nSet-Cookie: x", "/customers"),
    ("/" + "a" * 600, "/customers"),
    (None, "/customers"),
])
def test_next_is_a_path_on_this_site_or_the_default(value, expected):
    assert local_path(value) == expected


def test_cards_on_chat_platforms_link_through_the_sign_in_entry():
    assert card_link("https://hub.corp.cn/", "wecom", "/customers/7") == \
        "https://hub.corp.cn/auth/wecom/start?next=/customers/7"
    assert card_link("https://hub.corp.cn", "dingtalk", "/tasks/3") == \
        "https://hub.corp.cn/auth/dingtalk/start?next=/tasks/3"
    assert card_link("https://hub.corp.cn", None, "/tasks/3") == "https://hub.corp.cn/tasks/3"


def test_state_is_alphanumeric_within_wecoms_128_bytes_and_carries_next():
    nonce = "ab" * 16
    state = encode_state(nonce, "/customers/123")
    assert state.isalnum() and len(state) <= 128
    assert decode_state(state) == (nonce, "/customers/123")
    assert decode_state(encode_state(nonce, "/customers?q=" + "x" * 200)) == (nonce, "/customers")  # too long: default
    assert decode_state(nonce + "zz") is None and decode_state("short") is None
    assert decode_state(nonce + b"https://evil".hex()) == (nonce, "/customers")


def test_passwords_are_argon2id_salted_and_checked():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, "correct horse battery") and not verify_password(first, "Correct horse battery")
    assert not verify_password("not a hash", "x") and needs_rehash("not a hash")
    assert not verify_password(first, "x" * 10_000)
    for weak in ("short", "aaaaaaaaaaaa", "x" * 201):
        with pytest.raises(WeakPassword):
            hash_password(weak)
