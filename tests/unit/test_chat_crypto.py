"""Shared WeCom/DingTalk callback crypto: known answers, round trips, SDK interop, refusals.

Known-answer vectors: reference/messaging-apis.md §4. The vendors' SDKs draw a random
16-byte prefix; sdk-quirks.md: patch ``BasePrpCrypto.get_random_string`` to reproduce them.
"""

from __future__ import annotations

import base64
import struct

import dingtalk.crypto.base as dingtalk_crypto_base
import pytest
import wechatpy.crypto.base as wechatpy_crypto_base
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dingtalk.crypto import DingTalkCrypto
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.enterprise.crypto import WeChatCrypto

from connectors.kit.crypto import (
    BadPaddingError,
    CallbackCrypto,
    MalformedCiphertextError,
    ReceiveIdMismatchError,
    SignatureMismatchError,
    compute_signature,
    decode_aes_key,
    dingtalk_crypto,
    wecom_crypto,
)

AES_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
TOKEN = "emutoken"
NONCE = "n0nce"
PREFIX = "0123456789abcdef"

WECOM_ID = "wwemu0001"
WECOM_TS = "1700000000"
WECOM_MSG = "hello-echo"
WECOM_ENCRYPT = "4j/AuRx71kQlxVlzbpsMWDfWHHl51KWHDEiP3Oy7XBJ3wSLEt78Nacujn0VZO15jojAPa6TDx3Yuo1z2qmfhdg=="
WECOM_SIGNATURE = "db4943a9e26784e045e4861035de09be8fa82007"

DING_ID = "dingappkey01"
DING_TS = "1700000000000"
DING_MSG = '{"EventType":"check_url"}'
DING_ENCRYPT = "4j/AuRx71kQlxVlzbpsMWN8XtjwRdOcH+n7e3hsaZgEMcwZUcfF7dIDeZ037cZxfu7Uj9/spmTW75jlfH6fBZg=="
DING_SIGNATURE = "de5baa951904ad0589737e7f07151213911ba48e"
DING_SUCCESS_ENCRYPT = "4j/AuRx71kQlxVlzbpsMWLNtukattrjrMtINz90KiGqczHWsxaVDIc6c/UJbsjo7Sj5v3VsUidyFLkpubORVkQ=="
DING_SUCCESS_SIGNATURE = "88c640c1378beb9ffc4ec18f9a886fb487a44bb9"


def fixed_prefix() -> bytes:
    return PREFIX.encode()


def ours(receive_id: str, unit: str = "s") -> CallbackCrypto:
    return CallbackCrypto(TOKEN, AES_KEY, receive_id, timestamp_unit=unit, random_prefix=fixed_prefix)  # type: ignore[arg-type]


@pytest.fixture
def sdk_fixed_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wechatpy_crypto_base.BasePrpCrypto, "get_random_string", lambda self: PREFIX)
    monkeypatch.setattr(dingtalk_crypto_base.BasePrpCrypto, "get_random_string", lambda self: PREFIX)


# ---------------------------------------------------------------- known answers (§4)

@pytest.mark.parametrize(
    ("receive_id", "unit", "timestamp", "message", "encrypt", "signature"),
    [
        (WECOM_ID, "s", WECOM_TS, WECOM_MSG, WECOM_ENCRYPT, WECOM_SIGNATURE),
        (DING_ID, "ms", DING_TS, DING_MSG, DING_ENCRYPT, DING_SIGNATURE),
        (DING_ID, "ms", DING_TS, "success", DING_SUCCESS_ENCRYPT, DING_SUCCESS_SIGNATURE),
    ],
    ids=["wecom-echo", "dingtalk-check-url", "dingtalk-success"],
)
def test_known_answer_vectors_both_directions(receive_id, unit, timestamp, message, encrypt, signature):
    # given our crypto with the vector's fixed random prefix
    crypto = ours(receive_id, unit)
    # when it seals the message, then ciphertext and signature are the vector's
    sealed = crypto.seal(message, nonce=NONCE, timestamp=timestamp)
    assert (sealed.encrypt, sealed.signature) == (encrypt, signature)
    # and when it opens the vector, it gets the message back
    assert crypto.verify_and_decrypt(signature, timestamp, NONCE, encrypt) == message


def test_platform_presets_use_their_timestamp_units():
    # given the two presets, when asked for "now", then WeCom writes seconds and DingTalk ms
    assert wecom_crypto(TOKEN, AES_KEY, WECOM_ID).now_timestamp(1700000000.5) == "1700000000"
    assert dingtalk_crypto(TOKEN, AES_KEY, DING_ID).now_timestamp(1700000000.5) == "1700000000500"
    assert dingtalk_crypto(TOKEN, AES_KEY, DING_ID).timestamp_to_seconds(DING_TS) == 1700000000.0


def test_signature_is_sha1_over_sorted_parts():
    # given the four parts in any order, then the signature is order-independent and matches §4
    assert compute_signature(TOKEN, WECOM_TS, NONCE, WECOM_ENCRYPT) == WECOM_SIGNATURE
    assert compute_signature(NONCE, WECOM_ENCRYPT, TOKEN, WECOM_TS) == WECOM_SIGNATURE


# ---------------------------------------------------------------- round trips

@settings(max_examples=60, deadline=None)
@given(
    message=st.text(max_size=300),
    receive_id=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=24),
    unit=st.sampled_from(["s", "ms"]),
    nonce=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=16),
)
def test_round_trip_any_message(message, receive_id, unit, nonce):
    # given a crypto for any receive id with a random prefix (the production default)
    crypto = CallbackCrypto(TOKEN, AES_KEY, receive_id, timestamp_unit=unit)
    # when a message is sealed and opened again
    sealed = crypto.seal(message, nonce=nonce, timestamp=crypto.now_timestamp())
    # then the same text comes back and the padded length is a multiple of 32 bytes
    assert crypto.verify_and_decrypt(sealed.signature, sealed.timestamp, nonce, sealed.encrypt) == message
    assert len(base64.b64decode(sealed.encrypt)) % 32 == 0


def test_block_aligned_plaintext_gets_a_full_padding_block():
    # given a message whose framed length is already a multiple of 32 (16+4+len+id)
    receive_id = "x" * 12
    message = "m" * 32  # 16 + 4 + 32 + 12 = 64
    crypto = CallbackCrypto(TOKEN, AES_KEY, receive_id, random_prefix=fixed_prefix)
    # when encrypted, then a whole 32-byte padding block is added and it still round-trips
    assert len(base64.b64decode(crypto.encrypt(message))) == 96
    assert crypto.decrypt(crypto.encrypt(message)) == message


# ---------------------------------------------------------------- SDK interop

def test_wechatpy_decrypts_ours_and_we_decrypt_wechatpy(sdk_fixed_prefix):
    # given wechatpy's WeCom crypto and ours for the same corp
    sdk = WeChatCrypto(TOKEN, AES_KEY, WECOM_ID)
    crypto = ours(WECOM_ID)
    # when we seal the echostr, then wechatpy's URL check decrypts it
    sealed = crypto.seal(WECOM_MSG, nonce=NONCE, timestamp=WECOM_TS)
    assert sdk.check_signature(sealed.signature, WECOM_TS, NONCE, sealed.encrypt) == WECOM_MSG
    # and an event XML sealed by us is decrypted by wechatpy's decrypt_message
    event = "<xml><ToUserName>wwemu0001</ToUserName><Event>change_external_contact</Event></xml>"
    sealed_event = crypto.seal(event, nonce=NONCE, timestamp=WECOM_TS)
    body = f"<xml><ToUserName>{WECOM_ID}</ToUserName><Encrypt><![CDATA[{sealed_event.encrypt}]]></Encrypt></xml>"
    assert sdk.decrypt_message(body, sealed_event.signature, WECOM_TS, NONCE) == event
    # when wechatpy encrypts (patched prefix), then its output is the §4 vector and we open it
    reply_xml = sdk.encrypt_message(WECOM_MSG, NONCE, WECOM_TS)
    assert f"<![CDATA[{WECOM_ENCRYPT}]]>" in reply_xml
    assert f"<![CDATA[{WECOM_SIGNATURE}]]>" in reply_xml
    assert crypto.verify_and_decrypt(WECOM_SIGNATURE, WECOM_TS, NONCE, WECOM_ENCRYPT) == WECOM_MSG


def test_dingtalk_sdk_decrypts_ours_and_we_decrypt_dingtalk(sdk_fixed_prefix):
    # given dingtalk-sdk's crypto and ours for the same AppKey
    sdk = DingTalkCrypto(TOKEN, AES_KEY, DING_ID)
    crypto = ours(DING_ID, "ms")
    # when dingtalk-sdk encrypts "success" (patched prefix), then it is the §4 vector and we open it
    reply = sdk.encrypt_message("success", nonce=NONCE, timestamp=DING_TS)
    assert (reply["encrypt"], reply["msg_signature"]) == (DING_SUCCESS_ENCRYPT, DING_SUCCESS_SIGNATURE)
    assert crypto.verify_and_decrypt(reply["msg_signature"], DING_TS, NONCE, reply["encrypt"]) == "success"
    # and when we seal check_url, dingtalk-sdk verifies and decrypts it
    sealed = crypto.seal(DING_MSG, nonce=NONCE, timestamp=DING_TS)
    assert sdk.decrypt_encrypt_str(sealed.signature, DING_TS, NONCE, sealed.encrypt) == DING_MSG


def test_wechatpy_opens_the_dingtalk_vector_cipher_is_shared():
    # given the DingTalk vector, when wechatpy's WeCom class checks it with the AppKey as "corp id",
    # then it decrypts: the two platforms share the cipher byte for byte (§2.4)
    sdk = WeChatCrypto(TOKEN, AES_KEY, DING_ID)
    assert sdk.check_signature(DING_SIGNATURE, DING_TS, NONCE, DING_ENCRYPT) == DING_MSG


# ---------------------------------------------------------------- refusals

def _raw_encrypt(plaintext: bytes) -> str:
    key = decode_aes_key(AES_KEY)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


def _framed(message: bytes, receive_id: bytes) -> bytes:
    return PREFIX.encode() + struct.pack(">I", len(message)) + message + receive_id


@pytest.mark.parametrize("pad_byte", [0, 33, 255], ids=["zero", "thirty-three", "ff"])
def test_padding_byte_out_of_range_is_rejected(pad_byte):
    # given a well-framed plaintext whose last byte claims an impossible padding length
    body = _framed(b"hello", WECOM_ID.encode())
    filler = (-len(body) - 1) % 32
    plaintext = body + b"\x00" * filler + bytes([pad_byte])
    # when decrypted, then the padding check refuses it (wechatpy would not, sdk-quirks.md)
    with pytest.raises(BadPaddingError):
        ours(WECOM_ID).decrypt(_raw_encrypt(plaintext))


def test_inconsistent_padding_bytes_are_rejected():
    # given a plaintext padded with 4 bytes that are not all 0x04
    body = _framed(b"x" * 8, WECOM_ID.encode())  # 16+4+8+9 = 37 -> pad 27
    pad = 32 - len(body) % 32
    plaintext = body + bytes([pad]) * (pad - 2) + b"\x01" + bytes([pad])
    with pytest.raises(BadPaddingError):
        ours(WECOM_ID).decrypt(_raw_encrypt(plaintext))


def test_wrong_receive_id_is_rejected():
    # given a message encrypted for another corp
    foreign = ours("wwsomebodyelse").encrypt("<xml/>")
    # when our corp decrypts it, then it is refused
    with pytest.raises(ReceiveIdMismatchError):
        ours(WECOM_ID).decrypt(foreign)


def test_forged_signature_is_rejected_before_decryption():
    with pytest.raises(SignatureMismatchError):
        ours(WECOM_ID).verify_and_decrypt("0" * 40, WECOM_TS, NONCE, WECOM_ENCRYPT)


def test_declared_length_beyond_plaintext_is_rejected():
    # given a length prefix larger than the data that follows
    body = PREFIX.encode() + struct.pack(">I", 500) + b"short" + WECOM_ID.encode()
    pad = 32 - len(body) % 32
    with pytest.raises(MalformedCiphertextError):
        ours(WECOM_ID).decrypt(_raw_encrypt(body + bytes([pad]) * pad))


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"123").decode(), ""], ids=["chars", "short", "empty"])
def test_malformed_ciphertext_is_rejected(bad):
    with pytest.raises(MalformedCiphertextError):
        ours(WECOM_ID).decrypt(bad)


def test_bad_encoding_aes_key_is_refused_at_construction():
    with pytest.raises(ValueError):
        CallbackCrypto(TOKEN, AES_KEY[:-1], WECOM_ID)
