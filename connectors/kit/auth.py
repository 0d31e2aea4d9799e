"""Token auth as an ``httpx.Auth``: single-flight refresh, refresh once on expiry, audited.

A connector subclasses :class:`TokenAuth` with four small hooks — how to *fetch* a
credential, how to *apply* it to a request, how a reply says it was *rejected*, and
(optionally) how a reply *refreshes* it — and passes the auth to
:func:`connectors.kit.http.send`. Business calls never mention tokens.

The flow for one request::

    credential, generation = current()      # single flight: one fetch for N waiting threads
    apply(request, credential); send         # attempt 1
    reply rejected (expiry code)?  ── no ──▶ done
        │ yes: report the rejected exchange to the observer (attempt 1, own timing)
        ▼
    invalidate(generation)                   # dropped only if still the current generation
    credential, generation = current()       # the first thread fetches; the others reuse it
    apply(request, credential); send         # attempt 2 — whatever comes back is final

**Single flight.** ``current()`` fetches under a lock, so N threads finding the credential
missing wait for one fetch. A rejected credential is dropped only when the rejected
request was sent with the *current* generation: 20 threads rejected with the same stale
token cause one refresh, and a slow thread holding an even older generation cannot throw
away the credential another thread has just fetched.

**Refresh once.** A second rejection is not retried: the reply goes back to the client,
whose code table raises :class:`~hub.errors.AuthExpiredError`, and :func:`send` notes that
it came after one refresh. (wechatpy retries without a cap: ~970 requests, then a
RecursionError, against an always-42001 server — messaging-apis.md §1.6.)

**Audit.** An auth flow hides the resend inside one ``client.send``; the audit must still
see each exchange separately. So the flow reports the *rejected* exchange itself (outcome
"error", attempt 1, its own duration) to the observer, and stamps the request with the
attempt number and send time of the exchange that follows; :func:`send` reports that last
exchange with those values. Fetches (``gettoken``, a login) are calls of their own and are
reported by the client that makes them.

**Bodies.** Platforms that report expiry inside an HTTP 200 body (WeCom errcode
40014/42001/40001, Kingdee MsgCode 1) set ``requires_response_body = True`` so the
rejection hook can read it (:func:`connectors.kit.http.peek_json`).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import httpx

from connectors.kit.http import ATTEMPT_EXTENSION, CALL_EXTENSION, SENT_AT_EXTENSION, CallContext
from hub.calls import CallObserver, ExternalCall, ignore_call, ungated

T = TypeVar("T")
log = logging.getLogger(__name__)

# A credential with a known lifetime is used until this long before it ends (capped at half
# the lifetime): in-flight calls finish with it, and an early invalidation is covered by the
# refresh-once path anyway.
EXPIRY_MARGIN_S = 60.0


@dataclass(frozen=True)
class Credential(Generic[T]):
    """A fetched credential; ``lifetime_s`` None means "valid until the platform rejects it"."""

    value: T
    lifetime_s: float | None = None


@dataclass(frozen=True)
class _Held(Generic[T]):
    value: T
    usable_until: float | None


class TokenAuth(httpx.Auth, ABC, Generic[T]):
    """Base of every connector's token/session auth; see the module docstring for the flow."""

    requires_response_body = False

    def __init__(
        self, *, system: str, observer: CallObserver = ignore_call, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = system
        self._observer = observer
        self._clock = clock
        self._lock = threading.Lock()
        self._held: _Held[T] | None = None
        self._generation = 0

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def fetch(self) -> Credential[T]:
        """Obtain a new credential (runs under the lock: concurrent callers wait for it)."""

    @abstractmethod
    def apply(self, request: httpx.Request, credential: T) -> None:
        """Put ``credential`` on ``request`` (header, cookie, query parameter, signature).

        The resend reuses the same request object, so this must replace (or remove, for an
        empty credential) whatever it put there before.
        """

    @abstractmethod
    def rejection(self, response: httpx.Response) -> str | None:
        """Why ``response`` says the credential is no longer valid, or None when it does not."""

    def refreshed(self, response: httpx.Response, credential: T) -> T | None:
        """The credential as updated by ``response`` (e.g. a session cookie it set), or None."""
        return None

    # -- the shared state ----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many credentials have been fetched or adopted so far."""
        with self._lock:
            return self._generation

    def current(self) -> tuple[T, int]:
        """The usable credential and its generation, fetching it (once, for all threads) if needed."""
        with self._lock:
            held = self._held
            if held is None or (held.usable_until is not None and self._clock() >= held.usable_until):
                with ungated():  # no call slot under this lock: lock order (hub.calls.ungated)
                    held = self._hold(self.fetch())
            return held.value, self._generation

    def held(self) -> T | None:
        """The credential held right now, without fetching one."""
        with self._lock:
            return self._held.value if self._held is not None else None

    def adopt(self, value: T, lifetime_s: float | None = None) -> None:
        """Use a credential obtained elsewhere (a token shared by another process, a session
        resumed from an earlier reply) as a new generation."""
        with self._lock:
            self._hold(Credential(value, lifetime_s))

    def invalidate(self, generation: int) -> None:
        """Drop the credential if it is still ``generation`` (else someone already renewed it)."""
        with self._lock:
            if generation == self._generation:
                self._held = None

    def forget(self) -> None:
        """Drop whatever credential is held (after a logout); the next request fetches anew."""
        with self._lock:
            self._held = None

    def _hold(self, credential: Credential[T]) -> _Held[T]:
        usable_until = None
        if credential.lifetime_s is not None:
            lifetime = max(1.0, float(credential.lifetime_s))
            usable_until = self._clock() + max(lifetime - EXPIRY_MARGIN_S, lifetime / 2)
        self._held = _Held(credential.value, usable_until)
        self._generation += 1
        return self._held

    def _absorb(self, response: httpx.Response, generation: int) -> None:
        with self._lock:
            if self._held is None or generation != self._generation:
                return  # a reply to a superseded credential must not resurrect it
            updated = self.refreshed(response, self._held.value)
            if updated is not None:
                self._held = replace(self._held, value=updated)

    # -- the flow ----------------------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Apply the credential, send; on a rejection report it, renew once and resend."""
        generation = self._prepare(request, attempt=1)
        response = yield request
        self._absorb(response, generation)
        reason = self.rejection(response)
        if reason is None:
            return
        self._report_rejected(request, response, reason)
        self.invalidate(generation)
        generation = self._prepare(request, attempt=2)
        response = yield request
        self._absorb(response, generation)

    def _prepare(self, request: httpx.Request, *, attempt: int) -> int:
        credential, generation = self.current()
        self.apply(request, credential)
        request.extensions[ATTEMPT_EXTENSION] = attempt
        request.extensions[SENT_AT_EXTENSION] = time.perf_counter()
        return generation

    def _report_rejected(self, request: httpx.Request, response: httpx.Response, reason: str) -> None:
        call = request.extensions.get(CALL_EXTENSION)
        if not isinstance(call, CallContext):
            call = CallContext(self._system, request.url.path)
        sent_at = float(request.extensions.get(SENT_AT_EXTENSION, time.perf_counter()))
        log.info("%s %s: %s", call.system, call.operation, reason)
        self._observer(ExternalCall(
            system=call.system, operation=call.operation, outcome="error",
            duration_ms=(time.perf_counter() - sent_at) * 1000, key=call.key, external_id=call.external_id,
            attempt=int(request.extensions.get(ATTEMPT_EXTENSION, 1)), error=reason,
            http_status=response.status_code,
        ))


__all__ = ["EXPIRY_MARGIN_S", "Credential", "TokenAuth"]
