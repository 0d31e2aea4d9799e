"""The connector kit's one classification of HTTP exchanges, and vendor code tables."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from connectors.kit.codes import CodeRule, CodeTable
from connectors.kit.http import (
    DEFAULT_RETRY_AFTER_S,
    CallContext,
    parse_json,
    raise_for_status,
    redact,
    retry_after,
    send,
)
from hub.calls import CallTimer, ExternalCall, gated
from hub.errors import (
    AuthExpiredError,
    ConnectorError,
    PermanentError,
    RateLimitedError,
    RecipientError,
    RetryableError,
)

CALL = CallContext("acme", "orders/get", key="outbox-7", external_id="SO-1")


def exchange(handler: Callable[[httpx.Request], httpx.Response], calls: list[ExternalCall] | None = None) -> Any:
    """One kit exchange against a MockTransport handler, read the standard way."""
    def read(response: httpx.Response, timer: CallTimer) -> Any:
        raise_for_status(response, CALL)
        return parse_json(response, CALL)

    with httpx.Client(transport=httpx.MockTransport(handler), timeout=2.0) as http:
        request = http.build_request("GET", "https://api.example.com/orders/get?access_token=tok-SECRET")
        return send(http, request, CALL, (calls.append if calls is not None else lambda call: None), read)


@pytest.mark.parametrize(("status", "headers", "expected", "code"), [
    (400, {}, PermanentError, "HTTP 400"),
    (401, {}, PermanentError, "HTTP 401"),
    (403, {}, PermanentError, "HTTP 403"),
    (404, {}, PermanentError, "HTTP 404"),
    (409, {}, PermanentError, "HTTP 409"),
    (301, {"Location": "https://elsewhere.example.com/"}, PermanentError, "HTTP 301"),
    (408, {}, RetryableError, "HTTP 408"),  # RFC 9110 §15.5.9: not processed, the client MAY repeat
    (429, {}, RateLimitedError, "HTTP 429"),  # RFC 6585 §4: slow down
    (500, {}, RetryableError, "HTTP 500"),
    (502, {}, RetryableError, "HTTP 502"),
    (503, {}, RetryableError, "HTTP 503"),
    (503, {"Retry-After": "30"}, RateLimitedError, "HTTP 503"),  # RFC 9110 §15.6.4 with a wait
    (504, {}, RetryableError, "HTTP 504"),
])
def test_given_a_status_when_exchanged_then_one_rule_classifies_it_for_every_connector(
    status: int, headers: dict[str, str], expected: type[ConnectorError], code: str,
) -> None:
    # given a server answering with the status; when the kit exchanges with it
    with pytest.raises(ConnectorError) as caught:
        exchange(lambda request: httpx.Response(status, headers=headers, text="页面 not here"))
    # then the error class and code follow the kit's table, with the call's context
    error = caught.value
    assert type(error) is expected
    assert error.code == code and error.retryable == (expected is not PermanentError)
    assert (error.system, error.operation, error.external_id) == ("acme", "orders/get", "SO-1")
    assert str(error).startswith(f"acme.orders/get[SO-1]: HTTP {status}: 页面 not here")


def test_given_429_without_retry_after_when_exchanged_then_the_default_wait() -> None:
    with pytest.raises(RateLimitedError) as caught:
        exchange(lambda request: httpx.Response(429))
    assert caught.value.retry_after == DEFAULT_RETRY_AFTER_S


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), ("soon", None), ("", None)])
def test_given_retry_after_seconds_when_read_then_the_delay(header: str, seconds: float | None) -> None:
    response = httpx.Response(429, headers={"Retry-After": header} if header else {})
    assert retry_after(response) == seconds


def test_given_retry_after_as_http_date_when_read_then_seconds_until_then() -> None:
    now = dt.datetime(2024, 5, 8, 12, 0, 0, tzinfo=dt.UTC)
    response = httpx.Response(429, headers={"Retry-After": format_datetime(now + dt.timedelta(seconds=90), usegmt=True)})
    assert retry_after(response, now=now) == 90.0
    assert retry_after(response, now=now + dt.timedelta(hours=1)) == 0.0  # a date in the past: go now


@pytest.mark.parametrize(("exc", "expected", "code"), [
    (httpx.ReadTimeout("slow"), RetryableError, "timeout"),
    (httpx.ConnectTimeout("slow"), RetryableError, "timeout"),
    (httpx.PoolTimeout("busy pool"), RetryableError, "timeout"),
    (httpx.WriteTimeout("slow"), RetryableError, "timeout"),
    (httpx.ConnectError("[Errno 111] Connection refused"), RetryableError, "transport"),
    (httpx.ReadError("connection reset by peer"), RetryableError, "transport"),
    (httpx.RemoteProtocolError("peer closed connection"), RetryableError, "transport"),
    (httpx.ProxyError("proxy said no to https://api.example.com/x?access_token=tok-SECRET"), RetryableError,
     "transport"),
    (httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'htps://'"), PermanentError, "transport"),
])
def test_given_no_http_reply_when_exchanged_then_classified_without_leaking_the_url(
    exc: Exception, expected: type[ConnectorError], code: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    calls: list[ExternalCall] = []
    with pytest.raises(ConnectorError) as caught:
        exchange(handler, calls)
    assert type(caught.value) is expected and caught.value.code == code
    assert "tok-SECRET" not in str(caught.value) and "://" not in str(caught.value)
    # and the audit saw the failed exchange, without an HTTP status
    assert [(c.outcome, c.http_status, c.key) for c in calls] == [("error", None, "outbox-7")]


@pytest.mark.parametrize(("body", "code"), [
    ("", "empty_body"),
    ("   ", "empty_body"),
    ("<html><body>502 Bad Gateway — see https://proxy.example.com/?token=abc</body></html>", "bad_json"),
])
def test_given_a_2xx_that_is_not_json_when_exchanged_then_retryable(body: str, code: str) -> None:
    with pytest.raises(RetryableError) as caught:
        exchange(lambda request: httpx.Response(200, text=body))
    assert type(caught.value) is RetryableError and caught.value.code == code
    assert "abc" not in str(caught.value) and "://" not in str(caught.value)


def test_given_a_json_reply_when_exchanged_then_parsed_and_reported_once() -> None:
    calls: list[ExternalCall] = []
    assert exchange(lambda request: httpx.Response(200, json={"客户": "华东"}), calls) == {"客户": "华东"}
    assert [(c.system, c.operation, c.outcome, c.http_status, c.attempt, c.external_id) for c in calls] == [
        ("acme", "orders/get", "ok", 200, 1, "SO-1")]


def test_given_a_call_gate_when_exchanged_then_the_slot_covers_the_exchange_and_not_its_audit() -> None:
    # given a gate that notes when its slot is taken and given back, and an observer (the audit)
    events: list[str] = []

    @contextmanager
    def gate(system: str) -> Iterator[None]:
        events.append(f"take {system}")
        yield
        events.append(f"give back {system}")

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("exchange")
        return httpx.Response(200, json={})

    def observe(call: ExternalCall) -> None:
        events.append(f"audit {call.outcome}")

    # when one exchange is made under the gate, and one without it
    with httpx.Client(transport=httpx.MockTransport(handler), timeout=2.0) as http:
        with gated(gate):
            send(http, http.build_request("GET", "https://api.example.com/a"), CALL, observe, lambda r, t: None)
        send(http, http.build_request("GET", "https://api.example.com/b"), CALL, observe, lambda r, t: None)
    # then the slot was held around the gated exchange only, and its audit came after it was given back
    assert events == ["take acme", "exchange", "give back acme", "audit ok", "exchange", "audit ok"]


def test_given_a_call_gate_when_an_exchange_is_made_inside_another_then_it_runs_under_the_held_slot() -> None:
    # given a gate of one slot per system that cannot be taken twice (as when every slot is held)
    events: list[str] = []
    slots = {"acme": threading.Semaphore(1), "other": threading.Semaphore(1)}

    @contextmanager
    def gate(system: str) -> Iterator[None]:
        if not slots[system].acquire(timeout=2):
            raise AssertionError(f"waited for a second {system} slot while holding one: a deadlock")
        events.append(f"take {system}")
        try:
            yield
        finally:
            slots[system].release()
            events.append(f"give back {system}")

    def handler(request: httpx.Request) -> httpx.Response:
        events.append(f"exchange {request.url.path}")
        return httpx.Response(200, json={})

    # when a call's auth flow fetches a token of the same system mid-exchange (a nested send,
    # as kit.auth does for a credential found expired), and one of another system too
    def token_first(request: httpx.Request) -> Iterator[httpx.Request]:
        send(http, http.build_request("GET", "https://api.example.com/token"), CALL, lambda c: None,
             lambda r, t: None)
        send(http, http.build_request("GET", "https://api.example.com/elsewhere"), CallContext("other", "x"),
             lambda c: None, lambda r, t: None)
        yield request

    with httpx.Client(transport=httpx.MockTransport(handler), timeout=2.0) as http, gated(gate):
        send(http, http.build_request("GET", "https://api.example.com/b"), CALL, lambda c: None,
             lambda r, t: None, auth=_FlowAuth(token_first))
    # then the nested exchange of the same system took no second slot; another system's took its own
    assert events == ["take acme", "exchange /token", "take other", "exchange /elsewhere", "give back other",
                      "exchange /b", "give back acme"]


class _FlowAuth(httpx.Auth):
    """An auth flow given as a generator function (a token fetched before the request goes out)."""

    def __init__(self, flow: Callable[[httpx.Request], Iterator[httpx.Request]]) -> None:
        self._flow = flow

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:  # type: ignore[override]
        yield from self._flow(request)


def test_redact_masks_urls_and_secret_parameters() -> None:
    text = redact("failed: GET https://x.example.com/a?b=1 access_token=t0k corpsecret=s3 kdservice-sessionid=sid1\n ok")
    assert text == "failed: GET <url> access_token=*** corpsecret=*** kdservice-sessionid=*** ok"
    assert len(redact("长" * 500)) == 200


# -- vendor code tables ------------------------------------------------------------------------

TABLE = CodeTable({
    -1: CodeRule(RetryableError, "busy"),
    42001: CodeRule(AuthExpiredError, "token rejected"),
    45009: CodeRule(RateLimitedError, "rate limited", retry_after=60.0),
    45033: CodeRule(RateLimitedError, "rate limited"),
    81013: CodeRule(RecipientError, "no valid recipient"),
}, code_prefix="errcode ")


@pytest.mark.parametrize(("code", "expected", "message"), [
    (-1, RetryableError, "busy: 系统繁忙"),
    (42001, AuthExpiredError, "token rejected: 系统繁忙"),
    (45009, RateLimitedError, "rate limited: 系统繁忙"),
    (81013, RecipientError, "no valid recipient: 系统繁忙"),
    (60011, PermanentError, "系统繁忙"),  # not in the table: the default
    (None, PermanentError, "系统繁忙"),  # no code at all
])
def test_given_a_vendor_code_when_looked_up_then_the_declared_error(
    code: int | None, expected: type[ConnectorError], message: str,
) -> None:
    error = TABLE.error(code, "系统繁忙", CALL, recipients=["ghost"])
    assert type(error) is expected
    assert error.message == message
    assert error.code == (f"errcode {code}" if code is not None else None)
    assert error.external_id == "SO-1"


def test_code_table_rate_limits_recipients_and_expiry() -> None:
    assert TABLE.error(45009, "x", CALL).retry_after == 60.0  # type: ignore[attr-defined]
    assert TABLE.error(45033, "x", CALL).retry_after == DEFAULT_RETRY_AFTER_S  # type: ignore[attr-defined]
    assert TABLE.error(81013, "x", CALL, recipients=["a", "b"]).recipients == ["a", "b"]  # type: ignore[attr-defined]
    assert TABLE.means_expired(42001) and not TABLE.means_expired(-1) and not TABLE.means_expired(None)


def test_code_table_override_changes_one_operations_codes_only() -> None:
    gettoken = TABLE.override({42001: CodeRule(PermanentError, "secret refused")})
    assert type(gettoken.error(42001, "x", CALL)) is PermanentError
    assert type(TABLE.error(42001, "x", CALL)) is AuthExpiredError
    assert type(gettoken.error(-1, "x", CALL)) is RetryableError
