"""DingTalk event-subscription receiver over real HTTP: known answers, the official SDK both
ways, the encrypted "success" reply, forgeries, stale and replayed pushes, hostile bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import dingtalk.crypto.base as dingtalk_crypto_base
import httpx
import pytest
from dingtalk.crypto import DingTalkCrypto

import connectors.kit.crypto as kit_crypto
from connectors.dingtalk.callbacks import create_callback_app
from connectors.dingtalk.sandbox import (
    SANDBOX_APP_KEY,
    SANDBOX_CALLBACK_AES_KEY,
    SANDBOX_CALLBACK_TOKEN,
    TODO_EVENT,
    CallbackDriver,
)
from connectors.kit.crypto import dingtalk_crypto
from connectors.kit.sandbox import serve_in_thread
from tests.support.callbacks import Receiver
from tests.support.hostile import chunked_upload

NOW = 1_715_130_000.0
PATH = "/callbacks/dingtalk"
# reference/messaging-apis.md §4 (generated and cross-checked there; dingtalk-sdk decrypts them)
KAT_TOKEN, KAT_AES_KEY, KAT_OWNER = "emutoken", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "dingappkey01"
KAT_TS, KAT_NONCE, KAT_PREFIX = "1700000000000", "n0nce", b"0123456789abcdef"
KAT_CHECK_URL = ("4j/AuRx71kQlxVlzbpsMWN8XtjwRdOcH+n7e3hsaZgEMcwZUcfF7dIDeZ037cZxfu7Uj9/spmTW75jlfH6fBZg==",
                 "de5baa951904ad0589737e7f07151213911ba48e")
KAT_SUCCESS = ("4j/AuRx71kQlxVlzbpsMWLNtukattrjrMtINz90KiGqczHWsxaVDIc6c/UJbsjo7Sj5v3VsUidyFLkpubORVkQ==",
               "88c640c1378beb9ffc4ec18f9a886fb487a44bb9")


def serve(token: str, aes_key: str, app_key: str, now: float) -> Iterator[tuple[Receiver, httpx.Client, str]]:
    state = Receiver(now)
    app = create_callback_app(token=token, aes_key=aes_key, app_key=app_key, hooks=state.hooks(),
                              replay_window_s=300, now=lambda: state.now, path=PATH)
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, trust_env=False) as http:
        yield state, http, server.url + PATH


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, httpx.Client, str]]:
    yield from serve(SANDBOX_CALLBACK_TOKEN, SANDBOX_CALLBACK_AES_KEY, SANDBOX_APP_KEY, NOW)


def driver(url: str, state: Receiver) -> CallbackDriver:
    return CallbackDriver(url, clock=lambda: state.now)


def test_check_url_known_answer_gets_the_known_encrypted_success(monkeypatch):
    # given a receiver with the reference's key, owner key and clock, and its random prefix fixed
    monkeypatch.setattr(kit_crypto.os, "urandom", lambda n: KAT_PREFIX[:n])
    for state, http, _ in serve(KAT_TOKEN, KAT_AES_KEY, KAT_OWNER, int(KAT_TS) / 1000):
        # when DingTalk's check_url push of the reference arrives
        reply = http.post(PATH, params={"signature": KAT_CHECK_URL[1], "timestamp": KAT_TS, "nonce": KAT_NONCE},
                          json={"encrypt": KAT_CHECK_URL[0]})
        # then it is taken and answered with exactly the reference's encrypted "success"
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"msg_signature": KAT_SUCCESS[1], "timeStamp": KAT_TS, "nonce": KAT_NONCE,
                                "encrypt": KAT_SUCCESS[0]}
        assert state.events == [{"EventType": "check_url"}]


def test_dingtalk_sdk_encrypts_an_event_we_take_and_decrypts_our_reply(receiver, monkeypatch):
    state, http, _ = receiver
    sdk = DingTalkCrypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_CALLBACK_AES_KEY, SANDBOX_APP_KEY)
    event = {"EventType": "user_add_org", "CorpId": "ding5e2a9c7b31f4d086", "UserId": ["0123456789"],
             "TimeStamp": str(int(NOW * 1000))}
    # when dingtalk-sdk seals an event as DingTalk's servers would
    sealed = sdk.encrypt_message(json.dumps(event, ensure_ascii=False), nonce="abc123", timestamp=int(NOW * 1000))
    reply = http.post(PATH, params={"signature": sealed["msg_signature"], "timestamp": sealed["timeStamp"],
                                    "nonce": sealed["nonce"]}, json={"encrypt": sealed["encrypt"]})
    # then the receiver hands the event over, and the SDK opens the reply: "success"
    assert reply.status_code == 200 and state.events == [event]
    body = reply.json()
    assert sdk.decrypt_encrypt_str(body["msg_signature"], body["timeStamp"], body["nonce"], body["encrypt"]) \
        == "success"
    # the reply is signed over its own timestamp (ms) and the push's nonce
    assert body["nonce"] == "abc123" and body["timeStamp"] == str(int(NOW * 1000))


def test_the_sandbox_driver_registers_the_url_and_pushes_a_todo_event(receiver):
    state, _, url = receiver
    with driver(url, state) as ding:
        # when DingTalk checks the URL, then pushes a to-do event
        registered = ding.register()
        pushed = ding.push({"EventType": TODO_EVENT, "taskId": "task1", "done": True})
    # then both pushes count as delivered (encrypted success within 1.5 s)
    assert registered.acknowledged and pushed.acknowledged
    assert [e["EventType"] for e in state.events] == ["check_url", TODO_EVENT]


def test_msg_signature_and_timeStamp_spellings_are_accepted_too(receiver):
    state, http, _ = receiver
    crypto = dingtalk_crypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_CALLBACK_AES_KEY, SANDBOX_APP_KEY)
    sealed = crypto.seal('{"EventType":"user_modify_org"}', nonce="n1", timestamp=str(int(NOW * 1000)))
    reply = http.post(PATH, params={"msg_signature": sealed.signature, "timeStamp": sealed.timestamp, "nonce": "n1"},
                      json={"encrypt": sealed.encrypt})
    assert reply.status_code == 200 and state.events == [{"EventType": "user_modify_org"}]


def test_forged_signature_is_403_audited_and_not_processed(receiver):
    state, _, url = receiver
    with driver(url, state) as ding:
        params, body = ding.seal({"EventType": TODO_EVENT, "taskId": "t"})
        forged = ding.post({**params, "signature": "0" * 40}, body)
    assert forged.status == 403 and not forged.acknowledged and state.events == []
    assert state.rejections[0][0] == "bad_signature"
    assert state.rejections[0][1]["timestamp"] == params["timestamp"][:64]


def test_an_event_sealed_for_another_app_is_refused(receiver):
    state, _, url = receiver
    with CallbackDriver(url, app_key="dingotherapp00001", clock=lambda: state.now) as other:
        refused = other.push({"EventType": "user_add_org"})
    assert refused.status == 403 and state.rejections[0][0] == "wrong_receive_id"


@pytest.mark.parametrize("skew_s", [-301, 301])
def test_stale_or_future_timestamps_are_refused(receiver, skew_s):
    state, _, url = receiver
    with CallbackDriver(url, clock=lambda: state.now + skew_s) as ding:
        refused = ding.push({"EventType": "user_add_org"})
    assert refused.status == 403 and state.rejections[0][0] == "stale_timestamp" and state.events == []


def test_a_replayed_push_is_refused_and_a_failed_one_is_taken_again(receiver):
    state, _, url = receiver
    with driver(url, state) as ding:
        params, body = ding.seal({"EventType": TODO_EVENT, "taskId": "t1", "done": True})
        # when handling fails once (database down), DingTalk sees no success ...
        state.fail_next = True
        failed = ding.post(params, body)
        # ... so the same push sent again is taken, and a third copy is a replay
        taken = ding.post(params, body)
        replayed = ding.post(params, body)
    assert (failed.status, failed.acknowledged) == (500, False)
    assert taken.acknowledged and len(state.events) == 1
    assert replayed.status == 403 and state.rejections[-1][0] == "replayed"


@pytest.mark.parametrize(("body", "params", "reason"), [
    (b"not json", None, "malformed_body"),
    (b'["encrypt"]', None, "malformed_body"),
    (b"{}", None, "missing_encrypt"),
    (b'{"encrypt": "%%%"}', None, "malformed_encrypt"),
    (b'{"encrypt": "QUJD"}', {"timestamp": "17e12"}, "bad_timestamp"),
    (b'{"encrypt": "QUJD"}', {"signature": "xyz"}, "malformed_signature"),
    (b'{"encrypt": "QUJD"}', {"nonce": "n" * 65}, "bad_nonce"),
])
def test_malformed_pushes_are_400(receiver, body, params, reason):
    state, http, _ = receiver
    query = {"signature": "a" * 40, "timestamp": str(int(NOW * 1000)), "nonce": "n", **(params or {})}
    reply = http.post(PATH, params=query, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and state.rejections[0][0] == reason


def test_both_spellings_at_once_and_a_parameter_twice_are_refused(receiver):
    state, http, _ = receiver
    ts = str(int(NOW * 1000))
    both = http.post(PATH + f"?signature={'a' * 40}&msg_signature={'a' * 40}&timestamp={ts}&nonce=n",
                     json={"encrypt": "QUJD"})
    twice = http.post(PATH + f"?signature={'a' * 40}&timestamp={ts}&timestamp={ts}&nonce=n", json={"encrypt": "QUJD"})
    assert (both.status_code, twice.status_code) == (400, 400)
    assert [r for r, _ in state.rejections] == ["duplicate_parameter", "duplicate_parameter"]


def test_a_signed_event_nested_too_deep_is_400_not_500(receiver):
    state, _, url = receiver
    deep: dict[str, object] = {"EventType": "x"}
    for _ in range(40):
        deep = {"n": deep}
    with driver(url, state) as ding:
        refused = ding.push(deep)
    assert refused.status == 400 and state.rejections[0][0] == "malformed_event"


def test_an_endless_body_is_cut_off_at_the_limit(receiver):
    state, _, url = receiver
    ts = str(int(NOW * 1000))
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    upload = chunked_upload(host, int(port), f"{PATH}?signature={'a' * 40}&timestamp={ts}&nonce=n", total=8 << 20)
    assert upload.status == 413 and upload.sent < 4 << 20
    assert state.rejections[0][0] == "body_too_large"


def test_the_reply_comes_well_within_dingtalks_1500_ms(receiver):
    state, _, url = receiver
    with driver(url, state) as ding:
        started = time.perf_counter()
        pushed = ding.push({"EventType": "user_add_org"})
    assert pushed.acknowledged and time.perf_counter() - started < 1.5  # generous sanity bound


@pytest.fixture
def sdk_fixed_prefix(monkeypatch) -> None:
    monkeypatch.setattr(dingtalk_crypto_base.BasePrpCrypto, "get_random_string", lambda self: KAT_PREFIX.decode())


def test_the_sdk_with_the_reference_prefix_produces_the_push_our_receiver_takes(sdk_fixed_prefix):
    # given dingtalk-sdk sealing check_url with the reference's prefix, key, clock and nonce
    sdk = DingTalkCrypto(KAT_TOKEN, KAT_AES_KEY, KAT_OWNER)
    sealed = sdk.encrypt_message('{"EventType":"check_url"}', nonce=KAT_NONCE, timestamp=KAT_TS)
    # then it is the reference's vector, which the receiver takes (first test)
    assert (sealed["encrypt"], sealed["msg_signature"]) == KAT_CHECK_URL
