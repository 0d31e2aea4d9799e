"""WeCom callback receiver over real HTTP: URL check, events, forgeries and replays."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

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
from tests.support.callbacks import Receiver
from tests.support.hostile import chunked_upload, declared_upload, raw_request

NOW = 1_715_130_000.0
EVENT_XML = (
    "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
    "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
    "<UserID><![CDATA[humin]]></UserID><ExternalUserID><![CDATA[wmAAA]]></ExternalUserID>"
    "<State><![CDATA[expo2024]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>"
)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, httpx.Client]]:
    state = Receiver(NOW)
    app = create_callback_app(
        token=SANDBOX_CALLBACK_TOKEN, encoding_aes_key=SANDBOX_ENCODING_AES_KEY, receive_id=SANDBOX_CORP_ID,
        hooks=state.hooks(),
        replay_window_s=300, now=lambda: state.now, path="/wecom/callback",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        with serve_in_thread(app) as server, httpx.Client(base_url=server.url) as http:
            yield state, http


CRYPTO = wecom_crypto(SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, SANDBOX_CORP_ID)


def signed_event(*, ts: float = NOW, nonce: str = "n0nce", receive_id: str = SANDBOX_CORP_ID,
                 plaintext: str | None = None) -> tuple[dict[str, str], str]:
    crypto = CRYPTO if receive_id == SANDBOX_CORP_ID else wecom_crypto(
        SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, receive_id)
    timestamp = str(int(ts))
    sealed = crypto.seal(plaintext or EVENT_XML.format(corp=receive_id, ts=timestamp), nonce=nonce,
                         timestamp=timestamp)
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
    query = params or {"msg_signature": "0" * 40, "timestamp": str(int(NOW)), "nonce": "n"}
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


# ---------------------------------------------------------------- hostile input


GOOD_QUERY = {"msg_signature": "0" * 40, "timestamp": str(int(NOW)), "nonce": "n0nce"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"nonce": "n" * 60_000}, "query_too_long"),
        ({"nonce": "n" * 65}, "bad_nonce"),
        ({"nonce": "随机数"}, "bad_nonce"),
        ({"nonce": "a b"}, "bad_nonce"),
        ({"timestamp": "9" * 400}, "bad_timestamp"),
        ({"timestamp": "-1715130000"}, "bad_timestamp"),
        ({"timestamp": "１７１５"}, "bad_timestamp"),  # full-width digits
        ({"msg_signature": "0" * 41}, "malformed_signature"),
        ({"msg_signature": "g" * 40}, "malformed_signature"),
        ({"msg_signature": "x" * 1000}, "malformed_signature"),
    ],
    ids=["60KB-nonce", "long-nonce", "cjk-nonce", "space-nonce", "400-digit-timestamp",
         "negative-timestamp", "fullwidth-timestamp", "long-signature", "non-hex-signature", "1KB-signature"],
)
def test_oversized_or_malformed_parameters_are_400_before_any_work(receiver, query, reason):
    # given a well-formed signed event, when one query parameter is oversized or malformed
    state, http = receiver
    _, body = signed_event()
    started = time.monotonic()
    reply = raw_request(str(http.base_url).rstrip("/"), "POST",
                        f"/wecom/callback?{urlencode({**GOOD_QUERY, **query})}", body.encode())
    # then it is a 400 naming the reason, reported with short parameter prefixes, and nothing is handled
    assert reply.status == 400 and reply.body.decode().startswith(reason)
    assert time.monotonic() - started < 5  # generous: the quadratic audit masking took 16 s for 60 KB
    [(got, details)] = state.rejections
    assert got == reason and len(details["nonce"]) <= 64 and len(details["timestamp"]) <= 64
    assert state.events == []


def test_a_1_mb_parameter_is_refused_by_the_http_server_itself(receiver):
    # uvicorn's parser (llhttp) refuses a request head over ~80 KB before the app sees it
    state, http = receiver
    _, body = signed_event()
    reply = raw_request(str(http.base_url).rstrip("/"), "POST",
                        f"/wecom/callback?{urlencode({**GOOD_QUERY, 'nonce': 'n' * 1_000_000})}", body.encode())
    assert reply.status == 400
    assert state.rejections == [] and state.events == []


def test_url_check_parameters_have_limits_too(receiver):
    state, http = receiver
    query = {**GOOD_QUERY, "echostr": "A" * 1500}
    assert http.get("/wecom/callback", params=query).status_code == 400
    assert http.get("/wecom/callback", params={**query, "echostr": "not*base64"}).status_code == 400
    assert http.get("/wecom/callback", params={**query, "echostr": "A" * 50_000}).status_code == 400
    assert [r for r, _ in state.rejections] == ["malformed_echostr", "malformed_echostr", "query_too_long"]


def test_a_parameter_given_twice_is_refused(receiver):
    state, http = receiver
    params, body = signed_event()
    query = urlencode([*params.items(), ("nonce", "other")])
    assert http.post(f"/wecom/callback?{query}", content=body).status_code == 400
    assert state.rejections[0][0] == "duplicate_parameter" and state.events == []


def test_body_over_the_limit_is_cut_off_while_streaming(receiver):
    # given a chunked upload of 64 MB (the limit is 1 MB)
    state, http = receiver
    url = urlsplit(str(http.base_url))
    target = f"/wecom/callback?{urlencode(GOOD_QUERY)}"
    upload = chunked_upload(url.hostname or "", url.port or 80, target, total=64 << 20)
    # then the receiver answers 413 long before the upload could finish, and reports it
    assert upload.status == 413
    assert upload.sent < 32 << 20, upload
    assert [r for r, _ in state.rejections] == ["body_too_large"]
    # a declared length over the limit is refused before a byte of body is sent
    assert declared_upload(url.hostname or "", url.port or 80, target, declared=200 << 20) == 413
    assert http.get("/wecom/callback", params={**GOOD_QUERY, "echostr": "AAAA"}).status_code == 403  # still serving


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        ("<xml>" + "<a>" * 100 + "x" + "</a>" * 100 + "</xml>", "malformed_event"),
        ("<xml>" + "<MsgType>x</MsgType>" * 20_000 + "</xml>", "malformed_event"),
        ("<xml><Event>x</Event>", "malformed_event"),
    ],
    ids=["nested-100-deep", "20000-elements", "truncated"],
)
def test_signed_xml_bombs_are_400(receiver, plaintext, reason):
    # an authentic signature does not make an absurd document acceptable
    state, http = receiver
    params, body = signed_event(plaintext=plaintext)
    assert http.post("/wecom/callback", params=params, content=body).status_code == 400
    assert state.rejections[0][0] == reason and state.events == []


def test_a_dtd_cannot_hide_in_another_encoding(receiver):
    state, http = receiver
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'
    assert http.post("/wecom/callback", params=GOOD_QUERY, content=utf16.encode("utf-16")).status_code == 400
    assert state.rejections[0][0] == "malformed_body"
    with pytest.raises(ValueError, match="DTD"):
        parse_xml(utf16)


def test_deeply_nested_envelope_is_400_not_500(receiver):
    state, http = receiver
    body = "<xml>" + "<Encrypt>" * 50_000 + "</Encrypt>" * 50_000 + "</xml>"
    assert http.post("/wecom/callback", params=GOOD_QUERY, content=body).status_code == 400
    assert state.rejections[0][0] == "malformed_body"


def test_signed_event_with_a_700_kb_field_is_taken_whole(receiver):
    # given an authentic event with one huge field (the audit cuts it; the receiver must not choke)
    state, http = receiver
    huge = "客" * 240_000  # 720 KB of UTF-8
    params, body = signed_event(plaintext=f"<xml><MsgType>event</MsgType><Event>x</Event><Note>{huge}</Note></xml>")
    assert len(body) < 1 << 20
    started = time.monotonic()
    reply = http.post("/wecom/callback", params=params, content=body)
    assert reply.status_code == 200 and time.monotonic() - started < 5
    [event] = state.events
    assert event["Note"] == huge


def test_parse_xml_limits():
    many = "<xml>" + "<C>x</C>" * 6000 + "</xml>"
    with pytest.raises(ValueError, match="more than 5000 elements"):
        parse_xml(many)
    assert len(parse_xml(many, max_elements=10_000)["C"]) == 6000  # repeats are a list, built in linear time
    with pytest.raises(ValueError, match="nested deeper"):
        parse_xml("<xml><a><b>x</b></a></xml>", max_depth=2)


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n > 1 else "&lol;" * 10}">'
                            for n in range(1, 10))
                  + ']><xml><MsgType>event</MsgType><Event>&lol9;</Event></xml>')
EXTERNAL_ENTITY = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                   "<xml><MsgType>event</MsgType><Event>&xxe;</Event></xml>")
PARAMETER_ENTITY = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
                    "%remote;]><xml><MsgType>event</MsgType></xml>")
EXTERNAL_DTD = ('<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">'
                "<xml><MsgType>event</MsgType></xml>")


@pytest.mark.parametrize("plaintext", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, EXTERNAL_DTD],
                         ids=["billion-laughs", "external-entity", "parameter-entity", "external-dtd"])
def test_signed_events_with_entities_or_a_dtd_are_refused_before_expanding_or_fetching(receiver, plaintext):
    # given an event sealed with the right key (an attacker who has it, or a compromised relay)
    state, http = receiver
    params, body = signed_event(plaintext=plaintext)

    reply = http.post("/wecom/callback", params=params, content=body)

    # then it is refused as a malformed event, nothing is handed over, and the refusal is reported
    assert reply.status_code == 400
    assert state.events == []
    [(reason, details)] = state.rejections
    assert reason == "malformed_event" and "DTD" in details.get("problem", reply.text)
    assert "root:" not in reply.text and "lol" not in reply.text  # nothing expanded or read into the answer


@pytest.mark.parametrize("envelope", [EXTERNAL_ENTITY.replace("<Event>&xxe;</Event>", "<Encrypt>&xxe;</Encrypt>"),
                                      BILLION_LAUGHS.replace("<Event>&lol9;</Event>", "<Encrypt>&lol9;</Encrypt>")],
                         ids=["external-entity", "billion-laughs"])
def test_unsigned_envelopes_with_entities_are_refused_as_malformed(receiver, envelope):
    state, http = receiver
    assert http.post("/wecom/callback", params=GOOD_QUERY, content=envelope).status_code == 400
    assert [r for r, _ in state.rejections] == ["malformed_body"] and state.events == []


def test_a_message_that_only_mentions_a_doctype_in_its_text_is_taken(receiver):
    # given a customer's chat message quoting HTML and XML in its text (CDATA): no declaration
    state, http = receiver
    content = '看下这段: <!DOCTYPE html><!ENTITY x "y"> &amp; 好的'
    params, body = signed_event(plaintext=f"<xml><MsgType>text</MsgType><Content><![CDATA[{content}]]></Content>"
                                          "<!-- <!DOCTYPE in a comment> --></xml>")

    reply = http.post("/wecom/callback", params=params, content=body)

    # then it is an event like any other, its text whole
    assert reply.status_code == 200, reply.text
    [event] = state.events
    assert event["Content"] == content
