"""WeCom callback receiver over real HTTP: URL check, events, forgeries and replays."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from wechatpy.enterprise.crypto import WeChatCrypto

from connectors.kit.crypto import wecom_crypto
from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.callbacks import create_callback_app, parse_xml
from connectors.wecom.sandbox import (
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
    SANDBOX_ENCODING_AES_KEY,
    CallbackDriver,
)

NOW = 1_715_130_000.0
EVENT_XML = (
    "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
    "<UserID><![CDATA[humin]]></UserID><ExternalUserID><![CDATA[wmAAA]]></ExternalUserID>"
    "<State><![CDATA[expo2024]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>"
)


class Receiver:
    def __init__(self) -> None:
        self.now = NOW
        self.events: list[dict[str, Any]] = []
        self.rejections: list[tuple[str, dict[str, str]]] = []
        self.fail_next = False
        self.lock = threading.Lock()

    def on_event(self, event: dict[str, Any]) -> None:
        with self.lock:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("database unavailable")
            self.events.append(event)

    def on_rejected(self, reason: str, details: Any) -> None:
        with self.lock:
            self.rejections.append((reason, dict(details)))


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, httpx.Client]]:
    state = Receiver()
    app = create_callback_app(
        token=SANDBOX_CALLBACK_TOKEN, encoding_aes_key=SANDBOX_ENCODING_AES_KEY, receive_id=SANDBOX_CORP_ID,
        on_event=state.on_event, on_rejected=state.on_rejected, replay_window_s=300, now=lambda: state.now,
        path="/wecom/callback",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with serve_in_thread(app) as server, httpx.Client(base_url=server.url) as http:
            yield state, http


CRYPTO = wecom_crypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, SANDBOX_CORP_ID)


def signed_event(*, ts: float = NOW, nonce: str = "n0nce", receive_id: str = SANDBOX_CORP_ID) -> tuple[dict[str, str], str]:
    crypto = CRYPTO if receive_id == SANDBOX_CORP_ID else wecom_crypto(
        SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, receive_id)
    timestamp = str(int(ts))
    sealed = crypto.seal(EVENT_XML.format(corp=receive_id, ts=timestamp), nonce=nonce, timestamp=timestamp)
    body = (f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
            f"<Encrypt><![CDATA[{sealed.encrypt}]]></Encrypt></xml>")
    return {"msg_signature": sealed.signature, "timestamp": timestamp, "nonce": nonce}, body


def test_url_verification_answers_the_bare_plaintext(receiver):
    # given WeCom's GET with an encrypted echostr (base64 with '+' and '/', URL-encoded by httpx)
    state, http = receiver
    sealed = CRYPTO.seal("5927782489442352469", nonce="1372623149", timestamp=str(int(NOW)))
    # when the receiver answers, then the body is exactly the decrypted echostr
    reply = http.get("/wecom/callback", params={"msg_signature": sealed.signature, "timestamp": sealed.timestamp,
                                                "nonce": sealed.nonce, "echostr": sealed.encrypt})
    assert reply.status_code == 200
    assert reply.content == b"5927782489442352469"
    assert state.rejections == []


def test_url_verification_survives_an_unescaped_plus(receiver):
    # given an echostr whose '+' arrives unescaped (form decoding would turn it into a space)
    _, http = receiver
    for attempt in range(50):
        sealed = CRYPTO.seal(f"echo-{attempt}", nonce="n", timestamp=str(int(NOW)))
        if "+" in sealed.encrypt:
            break
    assert "+" in sealed.encrypt
    raw_query = (f"msg_signature={sealed.signature}&timestamp={sealed.timestamp}&nonce=n"
                 f"&echostr={sealed.encrypt.replace('/', '%2F').replace('=', '%3D')}")
    reply = http.get(f"/wecom/callback?{raw_query}")
    assert reply.status_code == 200 and reply.text == f"echo-{attempt}"


def test_url_verification_with_a_forged_signature_is_refused(receiver):
    state, http = receiver
    sealed = CRYPTO.seal("echo", nonce="n", timestamp=str(int(NOW)))
    reply = http.get("/wecom/callback", params={"msg_signature": "f" * 40, "timestamp": sealed.timestamp,
                                                "nonce": "n", "echostr": sealed.encrypt})
    assert reply.status_code == 403
    assert state.rejections[0][0] == "bad_signature"


def test_valid_event_is_accepted_and_handed_over(receiver):
    # given a correctly signed, encrypted change_external_contact event
    state, http = receiver
    params, body = signed_event()
    # when POSTed, then the answer is an empty 200 and on_event got the parsed event
    reply = http.post("/wecom/callback", params=params, content=body)
    assert reply.status_code == 200 and reply.content == b""
    [event] = state.events
    assert event["Event"] == "change_external_contact" and event["ChangeType"] == "add_external_contact"
    assert event["ExternalUserID"] == "wmAAA" and event["UserID"] == "humin"


def test_event_built_by_wechatpy_is_accepted(receiver):
    # given an inbound body built from wechatpy's Encrypt field (sdk-quirks.md)
    state, http = receiver
    xml = WeChatCrypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, SANDBOX_CORP_ID).encrypt_message(
        EVENT_XML.format(corp=SANDBOX_CORP_ID, ts=int(NOW)), "abc123", str(int(NOW)))
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", xml).group(1)  # type: ignore[union-attr]
    signature = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]>", xml).group(1)  # type: ignore[union-attr]
    body = f"<xml><ToUserName><![CDATA[{SANDBOX_CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    reply = http.post("/wecom/callback", params={"msg_signature": signature, "timestamp": str(int(NOW)),
                                                 "nonce": "abc123"}, content=body)
    assert reply.status_code == 200 and len(state.events) == 1


def test_forged_signature_is_403_and_reported(receiver):
    state, http = receiver
    params, body = signed_event()
    reply = http.post("/wecom/callback", params={**params, "msg_signature": "0" * 40}, content=body)
    assert reply.status_code == 403
    assert state.events == []
    [(reason, details)] = state.rejections
    assert reason == "bad_signature" and details["method"] == "POST" and details["nonce"] == "n0nce"


def test_stale_and_future_timestamps_are_refused(receiver):
    state, http = receiver
    for offset in (-301, +301):
        params, body = signed_event(ts=NOW + offset, nonce=f"n{offset}")
        assert http.post("/wecom/callback", params=params, content=body).status_code == 403
    assert [r for r, _ in state.rejections] == ["stale_timestamp", "stale_timestamp"]
    assert state.events == []


def test_exact_replay_inside_the_window_is_refused(receiver):
    # given an accepted event
    state, http = receiver
    params, body = signed_event()
    assert http.post("/wecom/callback", params=params, content=body).status_code == 200
    # when the identical request arrives again a minute later, then it is refused and not handled twice
    state.now += 60
    assert http.post("/wecom/callback", params=params, content=body).status_code == 403
    assert len(state.events) == 1
    assert state.rejections[-1][0] == "replayed"


def test_failed_handler_lets_wecoms_retry_through(receiver):
    # given a handler failing on the first delivery
    state, http = receiver
    state.fail_next = True
    params, body = signed_event()
    # when WeCom retries the same request after our 500, then the retry is accepted
    assert http.post("/wecom/callback", params=params, content=body).status_code == 500
    assert http.post("/wecom/callback", params=params, content=body).status_code == 200
    assert len(state.events) == 1


def test_event_for_another_corp_is_refused(receiver):
    state, http = receiver
    params, body = signed_event(receive_id="wwanothercorp000")
    assert http.post("/wecom/callback", params=params, content=body).status_code == 403
    assert state.rejections[0][0] == "wrong_receive_id"


@pytest.mark.parametrize(
    ("body", "params", "reason"),
    [
        ("<xml><Encrypt>", None, "malformed_body"),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>', None, "malformed_body"),
        ("<xml><ToUserName>x</ToUserName></xml>", None, "missing_encrypt"),
        ("<xml><Encrypt>abc</Encrypt></xml>", {"timestamp": str(int(NOW)), "nonce": "n"}, "missing_parameters"),
        ("<xml><Encrypt>abc</Encrypt></xml>", {"msg_signature": "x", "timestamp": "soon", "nonce": "n"}, "bad_timestamp"),
    ],
    ids=["truncated", "doctype", "no-encrypt", "no-signature", "bad-timestamp"],
)
def test_malformed_requests_are_400(receiver, body, params, reason):
    state, http = receiver
    query = params or {"msg_signature": "x" * 40, "timestamp": str(int(NOW)), "nonce": "n"}
    assert http.post("/wecom/callback", params=query, content=body).status_code == 400
    assert state.rejections[0][0] == reason


def test_parse_xml_handles_nesting_and_repeats():
    parsed = parse_xml("<xml><A>1</A><B><C>x</C><C>y</C></B><Empty/></xml>")
    assert parsed == {"A": "1", "B": {"C": ["x", "y"]}, "Empty": ""}


def test_sandbox_callback_driver_against_the_receiver(receiver):
    # given the sandbox playing WeCom's side against our receiver
    state, http = receiver
    with CallbackDriver(str(http.base_url).rstrip("/") + "/wecom/callback", clock=lambda: state.now) as driver:
        # when it checks the URL and pushes a customer event, then both succeed
        assert driver.verify_url() is True
        delivery = driver.external_contact_event("add_external_contact", "humin", "wmAAA", state="expo2024")
    assert delivery.accepted and delivery.attempts == 1
    [event] = state.events
    assert (event["ChangeType"], event["UserID"], event["State"], event["AgentID"]) == (
        "add_external_contact", "humin", "expo2024", "1000002")


def test_driver_retries_like_wecom_until_acknowledged(receiver):
    # given a handler that fails once
    state, http = receiver
    state.fail_next = True
    with CallbackDriver(str(http.base_url).rstrip("/") + "/wecom/callback", clock=lambda: state.now) as driver:
        delivery = driver.external_contact_event("del_follow_user", "humin", "wmAAA")
    # then WeCom's retry of the identical request is accepted: one event, two attempts
    assert delivery.statuses == [500, 200]
    assert len(state.events) == 1
