"""The connector kit's token auth: single flight, refresh once, each exchange audited.

A small platform modelled as a MockTransport handler issues tokens at ``/token`` and
reports an expired token inside an HTTP 200 body (``{"code": 42001}``), the way WeCom and
Kingdee do; :class:`DemoAuth` is a complete TokenAuth for it in a dozen lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from connectors.kit.auth import Credential, TokenAuth
from connectors.kit.codes import CodeRule, CodeTable
from connectors.kit.http import CallContext, parse_json, peek_json, raise_for_status, send
from hub.calls import CallTimer, ExternalCall, gated
from hub.errors import AuthExpiredError, PermanentError
from tests.support.threads import run_together

CODES = CodeTable({42001: CodeRule(AuthExpiredError, "token rejected")})


class Platform:
    """Issues tok-1, tok-2…; business replies reject expired tokens with code 42001."""

    def __init__(self, *, business_delay: float = 0.0, token_delay: float = 0.0) -> None:
        self.fetches = 0
        self.business_calls = 0
        self.expired: set[str] = set()
        self.always_reject = False
        self.business_delay = business_delay
        self.token_delay = token_delay
        self.hold: threading.Barrier | None = None  # makes N rejected calls overlap
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            time.sleep(self.token_delay)
            with self.lock:
                self.fetches += 1
                return httpx.Response(200, json={"token": f"tok-{self.fetches}", "ttl": 7200},
                                      headers={"X-Session": f"s-{self.fetches}"})
        with self.lock:
            self.business_calls += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.always_reject or token in self.expired:
            if self.hold is not None:
                self.hold.wait()
            time.sleep(self.business_delay)
            return httpx.Response(200, json={"code": 42001, "message": "token expired"})
        return httpx.Response(200, json={"code": 0, "token_seen": token})


class DemoAuth(TokenAuth[str]):
    """Bearer token, fetched from /token; code 42001 in the body rejects it."""

    requires_response_body = True

    def __init__(self, http: httpx.Client, calls: list[ExternalCall], **kwargs: Any) -> None:
        super().__init__(system="demo", observer=calls.append, **kwargs)
        self._http = http
        self._calls = calls

    def fetch(self) -> Credential[str]:
        def read(response: httpx.Response, timer: CallTimer) -> Credential[str]:
            raise_for_status(response, token_call)
            data = parse_json(response, token_call)
            return Credential(data["token"], data["ttl"])

        token_call = CallContext("demo", "token")
        return send(self._http, self._http.build_request("GET", "/token"), token_call, self._calls.append, read)

    def apply(self, request: httpx.Request, credential: str) -> None:
        request.headers["Authorization"] = f"Bearer {credential}"

    def rejection(self, response: httpx.Response) -> str | None:
        data = peek_json(response)
        code = data.get("code") if isinstance(data, dict) else None
        return f"token rejected ({code}); refreshing once" if CODES.means_expired(code) else None


class DemoClient:
    """The business side: calls never mention tokens."""

    def __init__(self, platform: Callable[[httpx.Request], httpx.Response], **auth_kwargs: Any) -> None:
        self.calls: list[ExternalCall] = []
        self.http = httpx.Client(base_url="https://demo.example.com", transport=httpx.MockTransport(platform))
        self.auth = DemoAuth(self.http, self.calls, **auth_kwargs)

    def get(self, order: str = "SO-1") -> dict[str, Any]:
        call = CallContext("demo", "orders/get", key="outbox-1", external_id=order)

        def read(response: httpx.Response, timer: CallTimer) -> dict[str, Any]:
            raise_for_status(response, call)
            data = parse_json(response, call)
            if data.get("code"):
                raise CODES.error(data["code"], data.get("message", ""), call)
            return dict(data)

        request = self.http.build_request("GET", "/orders/get", params={"id": order})
        return send(self.http, request, call, self.calls.append, read, auth=self.auth)


def test_given_call_slots_when_a_credential_is_fetched_then_it_takes_no_slot_under_the_credentials_lock() -> None:
    # given a client under a call gate whose every slot is held by other threads, which are inside
    # their exchanges waiting for this credential's lock (the gate refuses to be waited on here)
    platform = Platform()
    client = DemoClient(platform)
    asked: list[str] = []

    @contextmanager
    def every_slot_taken(system: str) -> Iterator[None]:
        asked.append(system)
        raise AssertionError("waited for a call slot while holding the credential's lock: a deadlock")
        yield

    # when a thread reads the credential before its call (as a client with the token in the
    # query string does) and the credential must be fetched
    with gated(every_slot_taken):
        token, _ = client.auth.current()
    # then the token call went out without asking for a slot, and the business call still asks
    assert token == "tok-1" and platform.fetches == 1 and asked == []
    with gated(every_slot_taken), pytest.raises(AssertionError, match="deadlock"):
        client.get()
    assert asked == ["demo"]


def test_given_a_cold_cache_when_twenty_threads_call_then_one_token_fetch() -> None:
    platform = Platform(token_delay=0.05)
    client = DemoClient(platform)
    assert run_together(20, client.get) == []
    assert platform.fetches == 1 and platform.business_calls == 20


def test_given_a_token_expired_on_the_server_when_twenty_threads_are_rejected_then_one_refresh() -> None:
    platform = Platform()
    client = DemoClient(platform)
    client.get()
    platform.expired.add("tok-1")
    platform.hold = threading.Barrier(20, timeout=5)  # every thread is rejected before anyone refreshes
    assert run_together(20, client.get) == []
    assert platform.fetches == 2
    assert platform.business_calls == 1 + 20 + 20


def test_given_a_stale_generation_when_invalidated_late_then_the_fresh_token_survives() -> None:
    platform = Platform()
    client = DemoClient(platform)
    first, generation = client.auth.current()
    client.auth.invalidate(generation)
    second, newer = client.auth.current()
    # a slow thread rejected with the first token comes back after the refresh
    client.auth.invalidate(generation)
    assert client.auth.current() == (second, newer) == ("tok-2", generation + 1)
    assert first == "tok-1" and platform.fetches == 2


def test_given_a_platform_rejecting_every_token_when_calling_then_refresh_once_then_auth_expired() -> None:
    platform = Platform()
    platform.always_reject = True
    client = DemoClient(platform)
    with pytest.raises(AuthExpiredError) as caught:
        client.get()
    assert platform.fetches == 2 and platform.business_calls == 2  # first try, one resend; no loop
    assert "still refused after one refresh" in str(caught.value)
    assert caught.value.code == "42001" and caught.value.external_id == "SO-1"


def test_given_a_rejected_token_when_resent_then_the_audit_sees_each_exchange_with_its_own_timing() -> None:
    platform = Platform(business_delay=0.3)  # only the rejected exchange is slow
    client = DemoClient(platform)
    client.get()
    platform.expired.add("tok-1")
    client.calls.clear()
    # when the next call is rejected once and resent
    assert client.get("SO-2")["token_seen"] == "tok-2"
    # then the audit has the rejected exchange, the token fetch, and the resend, in that order
    assert [(c.operation, c.outcome, c.attempt, c.external_id) for c in client.calls] == [
        ("orders/get", "error", 1, "SO-2"), ("token", "ok", 1, None), ("orders/get", "ok", 2, "SO-2"),
    ]
    rejected, _, resent = client.calls
    assert rejected.key == resent.key == "outbox-1"
    assert rejected.error == "token rejected (42001); refreshing once" and rejected.http_status == 200
    assert rejected.duration_ms >= 300  # its own exchange (sleep is a lower bound)
    assert resent.duration_ms < 300  # the resend alone, not the rejected exchange before it (generous)


def test_given_a_token_with_a_lifetime_when_time_passes_then_refetched_before_it_ends() -> None:
    now = [1000.0]
    platform = Platform()
    client = DemoClient(platform, clock=lambda: now[0])
    client.get()
    now[0] += 7200 - 61  # usable until 60 s before expiry
    client.get()
    assert platform.fetches == 1
    now[0] += 2
    client.get()
    assert platform.fetches == 2


def test_given_a_fetch_that_fails_when_calling_then_the_error_reaches_the_caller_and_the_audit() -> None:
    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(403, text="secret refused")
        raise AssertionError("no business call without a token")

    client = DemoClient(platform)
    with pytest.raises(PermanentError, match="HTTP 403"):
        client.get()
    assert [(c.operation, c.outcome) for c in client.calls] == [("token", "error"), ("orders/get", "error")]


class SessionAuth(TokenAuth[dict[str, str]]):
    """A session the platform issues in reply headers (like Kingdee's kdservice-sessionid)."""

    def fetch(self) -> Credential[dict[str, str]]:
        return Credential({})

    def apply(self, request: httpx.Request, credential: dict[str, str]) -> None:
        if "session" in credential:
            request.headers["X-Session"] = credential["session"]
        else:  # the resend reuses the request: remove what the first send carried
            request.headers.pop("X-Session", None)

    def rejection(self, response: httpx.Response) -> str | None:
        return "session lost" if response.status_code == 401 else None

    def refreshed(self, response: httpx.Response, credential: dict[str, str]) -> dict[str, str] | None:
        issued = response.headers.get("X-Session")
        return {**credential, "session": issued} if issued else None


def test_given_replies_issuing_sessions_when_one_answers_a_superseded_generation_then_it_is_ignored() -> None:
    auth = SessionAuth(system="demo")
    _, generation = auth.current()
    auth._absorb(httpx.Response(200, headers={"X-Session": "s-1"}), generation)
    assert auth.held() == {"session": "s-1"}
    auth.invalidate(generation)
    _, newer = auth.current()
    # a late reply to the old generation must not bring its session back
    auth._absorb(httpx.Response(200, headers={"X-Session": "s-old"}), generation)
    assert auth.held() == {} and auth.generation == newer


def test_given_a_401_rejection_when_resent_then_the_new_session_is_used() -> None:
    seen: list[str | None] = []

    def platform(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Session"))
        if request.headers.get("X-Session") == "stale":
            return httpx.Response(401)
        return httpx.Response(200, json={}, headers={"X-Session": "fresh"})

    auth = SessionAuth(system="demo")
    auth.adopt({"session": "stale"})
    with httpx.Client(transport=httpx.MockTransport(platform)) as http:
        assert http.get("https://demo.example.com/x", auth=auth).status_code == 200
        assert http.get("https://demo.example.com/x", auth=auth).status_code == 200
    assert seen == ["stale", None, "fresh"]
