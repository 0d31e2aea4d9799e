"""The vault seals personal values so that they read back only where they were written, and
its blind index matches a mobile or e-mail however it was typed (hub.vault)."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from sqlalchemy.engine import make_url

from hub.errors import ConfigError, VaultError
from hub.settings import Settings
from hub.vault import Vault, generate_key, is_sealed, key_id_of, load_vault
from hub.vault.keys import parse_keys

MOBILE = "13800138000"


def vault(*kids: str, index_key: bytes = b"i" * 32) -> Vault:
    return Vault({kid: kid.encode().ljust(32, b"k") for kid in kids}, kids[0], index_key)


def test_a_sealed_value_opens_to_itself_and_never_shows_the_plaintext():
    v = vault("k1")
    sealed = v.seal("contact", "mobile", MOBILE)
    assert sealed is not None and is_sealed(sealed) and key_id_of(sealed) == "k1"
    assert MOBILE not in sealed
    assert v.open("contact", "mobile", sealed) == MOBILE
    # a fresh nonce each time: equal values do not look equal at rest
    assert v.seal("contact", "mobile", MOBILE) != sealed
    assert v.seal("contact", "mobile", None) is None and v.open("contact", "mobile", None) is None


def test_plaintext_from_before_encryption_reads_as_it_is():
    assert vault("k1").open("contact", "mobile", MOBILE) == MOBILE


def test_a_flipped_bit_is_an_error_not_garbage():
    v = vault("k1")
    sealed = v.seal("contact", "mobile", MOBILE)
    assert sealed is not None
    prefix, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for position in (0, 14, len(raw) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        tampered = f"{prefix}:{base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip('=')}"
        with pytest.raises(VaultError, match="fails authentication") as caught:
            v.open("contact", "mobile", tampered)
        assert MOBILE not in str(caught.value)


def test_a_value_moved_to_another_column_or_table_does_not_open():
    v = vault("k1")
    sealed = v.seal("contact", "mobile", MOBILE)
    for table, column in (("contact", "email"), ("internal_user", "mobile"), ("lead", "mobile")):
        with pytest.raises(VaultError, match=f"{table}.{column}: .*copied from another column"):
            v.open(table, column, sealed)


def test_a_value_relabelled_with_another_key_id_does_not_open():
    v = vault("k2", "k1")
    sealed = v.seal("contact", "mobile", MOBILE)
    assert sealed is not None
    with pytest.raises(VaultError, match="fails authentication"):
        v.open("contact", "mobile", sealed.replace(":k2:", ":k1:", 1))
    with pytest.raises(VaultError, match="key id 'k9', which HUB_VAULT__KEYS does not hold"):
        v.open("contact", "mobile", sealed.replace(":k2:", ":k9:", 1))
    with pytest.raises(VaultError, match=r"not valid base64|too short"):
        v.open("contact", "mobile", "v1:k2:@@")


def test_a_vault_with_the_old_and_new_key_opens_both_and_seals_with_the_new():
    old = vault("k1")
    sealed_old = old.seal("contact", "email", "li@corp.cn")
    both = Vault({**old.keys, "k2": b"n" * 32}, "k2", old.index_key)
    assert both.open("contact", "email", sealed_old) == "li@corp.cn"
    resealed = both.reseal("contact", "email", sealed_old)
    assert key_id_of(resealed) == "k2" and both.open("contact", "email", resealed) == "li@corp.cn"
    assert both.reseal("contact", "email", resealed) == resealed  # already current: untouched
    with pytest.raises(VaultError):
        old.open("contact", "email", resealed)


def test_the_blind_index_matches_a_mobile_or_email_however_it_was_typed():
    v = vault("k1")
    same = {v.blind_index("mobile", m) for m in ("13800138000", "+86 138-0013-8000", "86 13800138000",
                                                  "１３８００１３８０００")}
    assert len(same) == 1 and None not in same
    assert v.blind_index("email", "Li@Corp.CN ") == v.blind_index("email", "li@corp.cn")
    assert v.blind_index("mobile", "13800138001") not in same
    assert v.blind_index("mobile", "") is None and v.blind_index("email", "no-at-sign") is None
    # a keyed hash: another index key gives another index, and the digits are not in it
    assert vault("k1", index_key=b"j" * 32).blind_index("mobile", MOBILE) not in same
    assert MOBILE not in next(iter(same))  # type: ignore[operator]


def test_protect_gives_the_columns_a_writer_stores():
    v = vault("k1")
    stored = v.protect("lead", mobile="+86 138 0013 8000", email=None)
    assert set(stored) == {"mobile", "mobile_hash", "email", "email_hash"}
    assert v.open("lead", "mobile", stored["mobile"]) == MOBILE  # normalised before sealing
    assert stored["mobile_hash"] == v.blind_index("mobile", MOBILE)
    assert stored["email"] is None and stored["email_hash"] is None
    with pytest.raises(ValueError, match="not a personal value"):
        v.protect("lead", phone=MOBILE)


def test_keys_and_their_ids_parse_with_the_first_current_and_errors_name_no_key():
    key1, key2 = generate_key(), generate_key()
    keys, current = parse_keys(f"k2:{key2}, k1:{key1}")
    assert current == "k2" and set(keys) == {"k1", "k2"} and all(len(k) == 32 for k in keys.values())
    for bad, says in ((f"k1:{key1},k1:{key2}", "listed twice"), ("k1:c2hvcnQ=", "has 5 bytes"),
                      (f"bad id!:{key1}", "entry 1 is not"), ("k1:%%%", "not base64"), (" , ", "is empty")):
        with pytest.raises(ConfigError, match=says) as caught:
            parse_keys(bad)
        assert key1 not in str(caught.value) and key2 not in str(caught.value)
    assert "k" * 5 not in repr(vault("k1")) and "keys" not in repr(vault("k1"))


def test_outside_sandbox_mode_a_missing_key_is_one_line_naming_the_variables(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_vault(Settings(home=tmp_path))
    assert "HUB_VAULT__KEYS and HUB_VAULT__INDEX_KEY" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "vault-keys.json").exists()


def test_in_sandbox_mode_keys_are_generated_once_into_a_file_only_the_owner_reads(tmp_path):
    first = load_vault(Settings(home=tmp_path, sandbox=True))
    path = tmp_path / "vault-keys.json"
    assert first.origin == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_vault(Settings(home=tmp_path, sandbox=True))
    sealed = first.seal("contact", "mobile", MOBILE)
    assert again.open("contact", "mobile", sealed) == MOBILE


def test_keys_from_the_environment_win_in_sandbox_mode_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_VAULT__KEYS", f"prod2:{generate_key()},prod1:{generate_key()}")
    monkeypatch.setenv("HUB_VAULT__INDEX_KEY", generate_key())
    v = load_vault(Settings(home=tmp_path, sandbox=True))
    assert (v.current, v.origin, v.key_ids) == ("prod2", "environment", ("prod2", "prod1"))
    assert not (tmp_path / "vault-keys.json").exists()


@pytest.mark.parametrize("system", ["kingdee", "yonyou", "wecom", "dingtalk"])
def test_a_plain_http_vendor_url_is_refused_unless_explicitly_allowed(system):
    from hub.registry import connector

    model = connector(system).settings_model
    assert model(base_url="https://api.example.cn").transport_problem(system) is None
    problem = model(base_url="http://api.example.cn").transport_problem(system)
    assert problem == (f"HUB_{system.upper()}__BASE_URL is plain http: use https, or set HUB_{system.upper()}__"
                       "ALLOW_HTTP=true if a trusted proxy on this network adds TLS")
    assert model(base_url="http://api.example.cn", allow_http=True).transport_problem(system) is None


def test_every_address_of_a_connector_is_checked_not_only_base_url():
    from connectors.dingtalk.settings import DingTalkSettings

    settings = DingTalkSettings(base_url="https://oapi.dingtalk.com", api_base_url="http://api.dingtalk.com")
    assert "HUB_DINGTALK__API_BASE_URL is plain http" in (settings.transport_problem("dingtalk") or "")


def test_doctor_reads_the_sslmode_from_the_url_and_the_dagster_url_keeps_it():
    from hub.cli.doctor import sslmode_of
    from hub.database import dagster_storage_url

    assert sslmode_of("postgresql+psycopg://hub@db.corp.cn/hub?sslmode=verify-full") == (
        "verify-full", "from the URL", False)
    assert sslmode_of("postgresql+psycopg://hub@db.corp.cn/hub") == ("prefer", "libpq default", False)
    assert sslmode_of("postgresql+psycopg://hub@127.0.0.1/hub")[2] is True
    assert sslmode_of("postgresql+psycopg://hub@/hub?host=/tmp/pg")[2] is True
    dagster = make_url(dagster_storage_url("postgresql+psycopg://hub@db.corp.cn/hub?sslmode=require"))
    assert dagster.drivername == "postgresql+psycopg2" and dagster.query["sslmode"] == "require"
