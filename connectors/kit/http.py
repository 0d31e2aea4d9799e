"""One HTTP exchange, and ONE classification of its failures into the hub's error tree.

Every connector sends its requests through :func:`send` and reads its replies with
:func:`raise_for_status` and :func:`parse_json`, then applies its own vendor code table
(:mod:`connectors.kit.codes`). What the transport and HTTP layers can say is decided here,
once, for every connector::

    timeout (connect, read, write, pool)          → RetryableError      code "timeout"
    other network trouble (refused, reset, proxy,
      protocol, decoding)                         → RetryableError      code "transport"
    unusable URL scheme, redirect loop            → PermanentError      code "transport"
    HTTP 429, or 503 with Retry-After             → RateLimitedError    code "HTTP 429"/"HTTP 503"
    HTTP 5xx, HTTP 408                            → RetryableError      code "HTTP <status>"
    any other non-2xx (4xx, unfollowed 3xx, 1xx)  → PermanentError      code "HTTP <status>"
    2xx with an empty body                        → RetryableError      code "empty_body"
    2xx with a body that is not JSON              → RetryableError      code "bad_json"

Why 408 and 429 are decided this way, for every connector:

- **408 Request Timeout** (RFC 9110 §15.5.9) means the server gave up waiting for the
  complete request; the request was not processed, and the RFC says a client "MAY repeat"
  it. So it is retryable, like a client-side timeout. (WeCom used to treat it as permanent;
  nothing in WeCom's documentation gives 408 another meaning.)
- **429 Too Many Requests** (RFC 6585 §4) asks the client to slow down, optionally with
  ``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date). It is a
  :class:`RateLimitedError` whose ``retry_after`` is that header, else
  :data:`DEFAULT_RETRY_AFTER_S`. Neither WeCom nor Kingdee answer 429 themselves (WeCom
  throttles with errcode 45009/45033 inside HTTP 200, reference messaging-apis.md §1.3;
  Kingdee overload shows as timeouts / 5xx, erp-apis.md §1.3), but gateways and proxies in
  front of them may, and they mean it the standard way.
- **503 with Retry-After** (RFC 9110 §15.6.4) is the same request to wait, so it is rate
  limiting too; without the header a 503 is an ordinary retryable 5xx.

Error messages never contain a URL or a secret: WeCom carries ``access_token`` in the
query string, so texts are built from status codes, exception class names and redacted
body snippets (:func:`redact`), never from requests.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import httpx

from hub.calls import CallObserver, CallTimer, call_slot, timed_call
from hub.errors import AuthExpiredError, ConnectorError, PermanentError, RateLimitedError, RetryableError

T = TypeVar("T")

# When a 429 carries no usable Retry-After. One minute is WeCom's penalty window for its own
# minute limit (messaging-apis.md §1.4) and a common proxy window; a guess for other gateways.
DEFAULT_RETRY_AFTER_S = 60.0
# request.extensions keys shared with the auth flow (connectors.kit.auth)
CALL_EXTENSION = "hub.call"
ATTEMPT_EXTENSION = "hub.attempt"
SENT_AT_EXTENSION = "hub.sent_at"

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"\b([\w-]*(?:token|secret|session|password|sign)[\w-]*)=[^&\s;,\"']*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CallContext:
    """What one external call concerns, for its error messages and its audit row."""

    system: str
    operation: str
    key: str | None = None
    external_id: str | None = None

    def context(self, code: str | None = None) -> dict[str, Any]:
        """Keyword arguments for a :class:`~hub.errors.ConnectorError` about this call."""
        return {"system": self.system, "operation": self.operation, "external_id": self.external_id, "code": code}


def redact(text: str, limit: int = 200) -> str:
    """A one-line snippet of a reply for an error text: URLs and secret-looking
    ``name=value`` pairs (token, secret, session, password, sign) masked, cut to ``limit``."""
    text = _URL.sub("<url>", text)
    text = _SECRET_PARAM.sub(r"\1=***", text)
    return _SPACE.sub(" ", text).strip()[:limit]


class OwnsHttpClient:
    """``close()`` and ``with`` support for a client that holds one ``httpx.Client`` as ``_http``."""

    _http: httpx.Client

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _MaskSecretParams(logging.Filter):
    """Masks secret-looking ``name=value`` pairs in the arguments of a log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1=***", str(arg)) if isinstance(arg, httpx.URL | str) else arg
                for arg in record.args
            )
        return True


def mask_secrets_in_httpx_logs() -> None:
    """Mask secret query values in httpx's request log lines ("HTTP Request: GET <url> …").

    For platforms that carry a token in the query string (WeCom, DingTalk). Global but
    harmless: it only masks values of secret-looking parameters, for every httpx user.
    """
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _MaskSecretParams) for f in httpx_logger.filters):
        httpx_logger.addFilter(_MaskSecretParams())


def send(
    http: httpx.Client, request: httpx.Request, call: CallContext, observer: CallObserver,
    read: Callable[[httpx.Response, CallTimer], T], *, auth: httpx.Auth | None = None,
) -> T:
    """Send ``request`` (through ``auth`` when given), report the exchange, return ``read``'s result.

    One audit report per call: the last exchange, with its own timing and attempt number
    (an auth flow that resent a rejected request reported that one itself, see
    :mod:`connectors.kit.auth`). Transport failures are classified here; ``read`` turns the
    reply into a result or raises (usually :func:`raise_for_status`, :func:`parse_json`
    and the connector's code table). Any exception is reported as outcome "error"; an
    AuthExpiredError on the resend says that the credential was refused after one refresh.
    """
    request.extensions[CALL_EXTENSION] = call
    with timed_call(observer, call.system, call.operation, key=call.key, external_id=call.external_id) as timer:
        try:
            with call_slot(call.system):  # the caller's cap on calls in flight, if any (hub.calls)
                timer.started = time.perf_counter()  # the call's own time, not the wait for a slot
                response = http.send(request, auth=auth)
        except httpx.RequestError as exc:
            _time_last_exchange(timer, request)
            raise transport_error(exc, call, http.timeout.read) from None
        except ConnectorError:
            _time_last_exchange(timer, request)
            raise
        _time_last_exchange(timer, request)
        timer.http_status = response.status_code
        try:
            return read(response, timer)
        except AuthExpiredError as exc:
            if timer.attempt < 2:
                raise
            raise AuthExpiredError(f"{exc.message} (still refused after one refresh)", system=exc.system,
                                   operation=exc.operation, external_id=exc.external_id, code=exc.code) from None


def _time_last_exchange(timer: CallTimer, request: httpx.Request) -> None:
    timer.attempt = int(request.extensions.get(ATTEMPT_EXTENSION, timer.attempt))
    timer.started = float(request.extensions.get(SENT_AT_EXTENSION, timer.started))


def transport_error(exc: httpx.RequestError, call: CallContext, timeout: float | None = None) -> ConnectorError:
    """The hub error for a request that got no HTTP reply (module table)."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        within = f" within {timeout:g} s" if timeout else ""
        return RetryableError(f"no response{within} ({name})", **call.context("timeout"))
    detail = redact(str(exc))
    message = f"request failed ({name}{': ' + detail if detail else ''})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.TooManyRedirects):
        return PermanentError(message, **call.context("transport"))
    return RetryableError(message, **call.context("transport"))


def retry_after(response: httpx.Response, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def status_error(response: httpx.Response, call: CallContext) -> ConnectorError | None:
    """The hub error for a non-2xx reply (module table), or None for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    snippet = redact(response.text) if response.content else ""
    message = f"HTTP {status}" + (f": {snippet}" if snippet else " (empty body)")
    context = call.context(f"HTTP {status}")
    wait = retry_after(response)
    if status == 429 or (status == 503 and wait is not None):
        return RateLimitedError(message, retry_after=DEFAULT_RETRY_AFTER_S if wait is None else wait, **context)
    if status >= 500 or status == 408:
        return RetryableError(message, **context)
    if 300 <= status < 400:
        message += " (redirect not followed: is the base URL right?)"
    return PermanentError(message, **context)


def raise_for_status(response: httpx.Response, call: CallContext) -> None:
    """Raise :func:`status_error`'s error for a non-2xx reply."""
    error = status_error(response, call)
    if error is not None:
        raise error


def parse_json(response: httpx.Response, call: CallContext, *, parse_float: Callable[[str], Any] | None = None) -> Any:
    """The reply body as JSON; an empty or non-JSON body (a gateway page) is retryable."""
    text = response.text
    if not text.strip():
        raise RetryableError(f"HTTP {response.status_code} with an empty body", **call.context("empty_body"))
    try:
        return json.loads(text, parse_float=parse_float)
    except ValueError:
        raise RetryableError(f"reply is not JSON (proxy or gateway page?): {redact(text)}",
                             **call.context("bad_json")) from None


def json_object(response: httpx.Response, call: CallContext) -> dict[str, Any]:
    """A 2xx reply's body as a JSON object: any other status raises per :func:`status_error`,
    an empty, non-JSON or non-object body is retryable (a gateway page, a truncated reply)."""
    raise_for_status(response, call)
    data = parse_json(response, call)
    if not isinstance(data, dict):
        raise RetryableError("reply is not a JSON object", **call.context("bad_json"))
    return data


def peek_json(response: httpx.Response, *, marker: bytes | None = None, max_bytes: int = 16384) -> Any:
    """A small reply body as JSON, or None (too big to be an error envelope, or not JSON).

    For auth flows deciding "credential rejected?" on every reply: error envelopes are a few
    hundred bytes, so large pages are never parsed twice; with ``marker`` (Kingdee:
    ``b"MsgCode"``) only bodies containing it are parsed at all.
    """
    body = response.content
    if not body or len(body) > max_bytes or (marker is not None and marker not in body):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


__all__ = [
    "ATTEMPT_EXTENSION",
    "CALL_EXTENSION",
    "DEFAULT_RETRY_AFTER_S",
    "SENT_AT_EXTENSION",
    "CallContext",
    "OwnsHttpClient",
    "json_object",
    "mask_secrets_in_httpx_logs",
    "parse_json",
    "peek_json",
    "raise_for_status",
    "redact",
    "retry_after",
    "send",
    "status_error",
    "transport_error",
]
