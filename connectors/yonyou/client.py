"""The only module that speaks HTTP to Yonyou YonBIP (open API, reference ``erp-apis.md`` §2).

Shape of the conversation (§2.2):

1. **Gateway discovery**: ``GET {base}/open-auth/dataCenter/getGatewayAddress?tenantId=T``
   names the tenant's data centre: ``gatewayUrl`` (…/iuap-api-gateway) and ``tokenUrl``
   (…/iuap-api-auth). Asked once per client (a tenant does not move data centres while a
   process runs); ``gateway_url`` / ``token_url`` given explicitly skip it.
2. **Token** (self-built app): ``GET {tokenUrl}/open-auth/selfAppAuth/base/v1/getAccessToken``
   with ``appKey``, ``timestamp`` (ms) and ``signature`` = base64(HMAC-SHA256(appSecret,
   "appKey<k>timestamp<t>")), URL-encoded once by httpx. Success is ``code "00000"`` with
   ``data.access_token`` and ``data.expire`` (7200 s). :class:`YonyouAuth` — the kit's
   :class:`~connectors.kit.auth.TokenAuth` — holds it until shortly before it expires,
   fetches it single-flight, and puts it on the query string as ``access_token``.
3. **Business calls**: ``{gatewayUrl}/yonbip/<path>?access_token=…``, JSON bodies; success is
   ``code "200"`` (compared as text: samples mix ``"200"`` and ``200``, §2.3).

Errors: the kit classifies transport trouble, HTTP statuses and non-JSON bodies
(:mod:`connectors.kit.http`); the code table :data:`CODES` adds Yonyou's (§2.3)::

    310036 非法token (invalid or expired), 310001 token missing,
      plain-text body "非法token"                     → refresh once, then AuthExpiredError
    310032/310039/310042/310046 (rate limits)        → RateLimitedError (wait: a guess, below)
    202 (idempotent call still processing)           → RateLimitedError, retry after 5 s (§2.3)
    310043/310071/310072/310504 (circuit, backend)   → RetryableError
    310404 (HTTP 404, path not registered), 310037,
      310008/310015/310023 (parameters), 999, 0, …   → YonyouBusinessError (PermanentError)

The HTTP 404 of an unknown path carries its code in a JSON body and is classified by the
code, not the status. Batch calls (submit/audit) answer ``"200"`` with ``data.failCount`` and
``data.messages``: :class:`BatchOutcome` keeps them per id, the caller decides.

Quota (§2.3 [DOC]): the sales order list, detail and singleSave APIs get 60 calls a minute
each from 2026-03-31 (the announced "free" quota; a tenant may buy more). The client paces
those three APIs itself (:data:`QUOTA_APIS`, ``order_calls_per_minute``): a
:class:`~connectors.kit.pacing.Pacer` per API, app and host, shared by every client of the
process as DingTalk's. It waits, it never fails a call; a 310046 the platform still answers
(other processes, other apps of the tenant) stays a RateLimitedError the caller retries.
Whether YonBIP counts a sliding or a fixed minute is a GUESS left open: a sliding window is
paced, which keeps inside a fixed-minute counter too (each fixed minute is a sliding one).

No retries beyond the one token refresh: backoff belongs to the outbox dispatcher and the
sync engine (DESIGN.md, one layer per concern); ``singleSave``'s ``resubmitCheckKey`` is what
makes a resend after a lost reply harmless, and the writer relies on it.

Every HTTP exchange (discovery and token included) is reported to ``observer`` with
``system="yonyou"`` and the path below ``/yonbip/`` as operation. The app secret and the
token never appear in messages, logs or audit rows: the token travels in the query string,
so URLs are never quoted (:func:`connectors.kit.redact`, httpx log masking).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import httpx
from pydantic import SecretStr

from canonical_model.storable import shown
from connectors import kit
from connectors.yonyou.settings import DEFAULT_ORDER_CALLS_PER_MINUTE
from hub.calls import CallObserver, ignore_call
from hub.contracts import UNREADABLE
from hub.errors import AuthExpiredError, PermanentError, RateLimitedError, RetryableError

SYSTEM = "yonyou"
AUTH_OK = "00000"
BUSINESS_OK = "200"
TOKEN_PATH = "open-auth/selfAppAuth/base/v1/getAccessToken"
DISCOVERY_PATH = "open-auth/dataCenter/getGatewayAddress"
INVALID_TOKEN_TEXT = "非法token"
USER_AGENT = "crm-erp-hub yonyou-connector/0.1"
# An idempotent save repeated after the replay hour: success, ``data.id`` is the earlier
# document (§2.3/§2.4; the docs disagree between 10004 and 100004, so both).
DUPLICATE_CODES = frozenset({"10004", "100004"})
# Customer list pages may hold 5,000 rows, AR lists 500 (§2.5); orders are read at the AR size.
MAX_CUSTOMER_PAGE = 5000
MAX_LIST_PAGE = 500
CUSTOMER_LIST = "digitalModel/merchant/newlist"
ORDER_LIST = "sd/voucherorder/list"
ORDER_DETAIL = "sd/voucherorder/detail"
ORDER_SAVE = "sd/voucherorder/singleSave"
RECEIVABLE_LIST = "EFI/arPublicEvent/list"
# The APIs of the announced per-minute quota (§2.3), each paced on its own.
QUOTA_APIS = (ORDER_LIST, ORDER_DETAIL, ORDER_SAVE)
QUOTA_WINDOW_S = 60.0
# The pacer's window is this much longer than the platform's (departures vs arrivals, see
# connectors.kit.pacing): a second, a GUESS as the window type itself (jitter on a loaded
# machine reaches tens of milliseconds, so a fraction of a shortened test minute is too little).
QUOTA_MARGIN_S = 1.0
# The staff archive list: path and fields (code, name, mobile, email) are a GUESS by analogy
# with the merchant list; the reference does not cover staff.
STAFF_LIST = "digitalModel/staff/list"
Json = dict[str, Any]


class YonyouBusinessError(PermanentError):
    """YonBIP refused the request (a business or parameter failure); never retried."""


# Rate-limit windows are undocumented (§2.3: only per-minute quotas); 10 s is a GUESS that
# lets a minute window refill partly before the dispatcher tries again.
RATE_LIMIT_WAIT_S = 10.0
CODES = kit.CodeTable({
    310001: kit.CodeRule(AuthExpiredError, "token missing"),
    310036: kit.CodeRule(AuthExpiredError, "非法token (invalid or expired)"),
    310032: kit.CodeRule(RateLimitedError, "system rate limit", retry_after=RATE_LIMIT_WAIT_S),
    310039: kit.CodeRule(RateLimitedError, "app rate limit", retry_after=RATE_LIMIT_WAIT_S),
    310042: kit.CodeRule(RateLimitedError, "product rate limit", retry_after=RATE_LIMIT_WAIT_S),
    310046: kit.CodeRule(RateLimitedError, "API rate limit", retry_after=RATE_LIMIT_WAIT_S),
    202: kit.CodeRule(RateLimitedError, "idempotent call still processing", retry_after=5.0),
    310043: kit.CodeRule(RetryableError, "circuit open"),
    310071: kit.CodeRule(RetryableError, "backend failure"),
    310072: kit.CodeRule(RetryableError, "backend refused"),
    310504: kit.CodeRule(RetryableError, "backend timeout"),
    310037: kit.CodeRule(YonyouBusinessError, "API not authorised for the app"),
    310404: kit.CodeRule(YonyouBusinessError, "API path not registered"),
}, default=kit.CodeRule(YonyouBusinessError), code_prefix="code ")


def sign(params: Mapping[str, str], secret: str) -> str:
    """The token request signature (§2.2): parameters other than ``signature`` sorted by name,
    ``name + value`` concatenated, HMAC-SHA256 keyed by the app secret, base64 of the raw digest."""
    text = "".join(f"{name}{params[name]}" for name in sorted(params) if name != "signature")
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def reply_code(payload: Any) -> str | None:
    """The envelope's ``code`` as text (``"200"`` and ``200`` alike), or None without one."""
    if isinstance(payload, Mapping) and payload.get("code") is not None:
        return str(payload["code"]).strip()
    return None


def _numeric(code: str | None) -> int | None:
    return int(code) if code is not None and code.lstrip("-").isdigit() else None


def _message(payload: Any) -> str:
    text = payload.get("message") if isinstance(payload, Mapping) else None
    return kit.redact(str(text or "no message"), 300)


class Addresses(NamedTuple):
    """Where a tenant's API lives: the business gateway and the token service."""

    gateway_url: str
    token_url: str


@dataclass(frozen=True)
class Reply:
    """A reply the caller accepted: its code, ``data`` and message."""

    code: str
    data: Any
    message: str = ""


@dataclass(frozen=True)
class Saved:
    """A saved document: YonBIP's id and its code (bill number / customer code). ``duplicate``:
    the save was a repeat of one made with the same ``resubmitCheckKey`` over an hour ago."""

    id: str
    code: str
    duplicate: bool = False


@dataclass(frozen=True)
class BatchOutcome:
    """A batch action's reply (``batchsubmit``/``batchaudit``): ``count``, ``sucessCount``
    (vendor spelling), ``failCount`` and the failure ``messages``."""

    count: int
    succeeded: int
    failed: int
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.failed == 0


@dataclass(frozen=True)
class ListPage:
    """One page of a paged list (``recordList`` with ``recordCount``/``pageCount``)."""

    records: list[Json]
    page_index: int
    page_count: int | None = None
    record_count: int | None = None


class YonyouAuth(kit.TokenAuth[str]):
    """The self-built app's token on the query string; 310036/310001 (or the bare text
    ``非法token``) in a reply reject it, and the kit refreshes once."""

    requires_response_body = True

    def __init__(self, fetch_token: Callable[[], kit.Credential[str]], *, observer: CallObserver = ignore_call,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(system=SYSTEM, observer=observer, clock=clock)
        self._fetch_token = fetch_token

    def fetch(self) -> kit.Credential[str]:
        """A new token from the token service (its own audited call)."""
        return self._fetch_token()

    def apply(self, request: httpx.Request, credential: str) -> None:
        """``access_token`` as a query parameter (§2.2: documented; the SDK's header is not)."""
        request.url = request.url.copy_set_param("access_token", credential)

    def rejection(self, response: httpx.Response) -> str | None:
        """Expired or unknown token, in JSON or as the plain text one API answers (§2.3)."""
        if response.content.strip().decode("utf-8", "replace") == INVALID_TOKEN_TEXT:
            return "token refused (plain 非法token); refreshing once"
        code = _numeric(reply_code(kit.peek_json(response, marker=b"3100")))
        return f"token refused (code {code}); refreshing once" if CODES.means_expired(code) else None


class YonyouClient(kit.OwnsHttpClient):
    """Typed access to one tenant's YonBIP open API (sync, thread-safe).

    ``base_url`` is the discovery host; ``gateway_url``/``token_url`` skip discovery.
    ``read_page_size`` and ``read_overlap_s`` are the streams' read settings (the streams are
    static registry data, so per-deployment read settings travel with the client).
    ``order_calls_per_minute`` paces each of :data:`QUOTA_APIS` (None or 0: not paced).
    """

    system = SYSTEM

    def __init__(
        self, *, base_url: str, tenant_id: str, app_key: str, app_secret: SecretStr,
        gateway_url: str | None = None, token_url: str | None = None, timeout: float = 30.0,
        observer: CallObserver = ignore_call, transport: httpx.BaseTransport | None = None,
        read_page_size: int = MAX_LIST_PAGE, read_overlap_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        order_calls_per_minute: int | None = DEFAULT_ORDER_CALLS_PER_MINUTE, quota_window_s: float | None = None,
        max_concurrent_reads: int | None = None,
    ) -> None:
        if not app_key or not app_secret.get_secret_value():
            raise ValueError("app_key and app_secret are required")
        self.read_page_size = min(max(read_page_size, 1), MAX_LIST_PAGE)
        self.read_overlap_s = max(read_overlap_s, 0.0)
        # Reads in flight at once from this client, whatever number of streams read in parallel
        # and however far each reads ahead (list pages requested ahead, an order's detail beside
        # them): the tenant's limit (YonyouSettings.max_concurrent_calls, a GUESS: §2.3 gives
        # only per-minute quotas). None: no limit here (a client built by hand), and readers
        # keep to two calls in flight.
        self.read_concurrency = None if max_concurrent_reads is None else max(max_concurrent_reads, 1)
        self._read_slots: AbstractContextManager[Any] = nullcontext() if max_concurrent_reads is None \
            else kit.ReadSlots(max(max_concurrent_reads, 1))
        self._discovery = base_url.rstrip("/")
        self._tenant_id = tenant_id
        self._app_key = app_key
        self._app_secret = app_secret
        self._observer = observer
        self._addresses: Addresses | None = None
        if gateway_url and token_url:
            self._addresses = Addresses(gateway_url.rstrip("/"), token_url.rstrip("/"))
        self._discovery_lock = threading.Lock()
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"})
        self.auth = YonyouAuth(self._fetch_token, observer=observer, clock=clock)
        # one pacer per quota'd API, app and host in the process (None or 0: a purchased quota);
        # the window is the minute (QUOTA_WINDOW_S, read here so a test can shorten it)
        host = self._addresses.gateway_url if self._addresses else self._discovery
        quota_window_s = QUOTA_WINDOW_S if quota_window_s is None else quota_window_s
        self.pacers: dict[str, kit.Pacer] = {} if not order_calls_per_minute else {
            path: kit.shared_pacer(f"{SYSTEM}:{app_key}@{host}/{path}", order_calls_per_minute,
                                   window_s=quota_window_s, margin_s=QUOTA_MARGIN_S)
            for path in QUOTA_APIS}

    def __repr__(self) -> str:  # never the secret or the token
        return f"YonyouClient(tenant_id={self._tenant_id!r}, app_key={self._app_key!r})"

    # -- discovery and token -----------------------------------------------------------------

    def addresses(self) -> Addresses:
        """The tenant's gateway and token addresses (discovered once, §2.2 step 1)."""
        with self._discovery_lock:
            if self._addresses is None:
                data = self._exchange("GET", f"{self._discovery}/{DISCOVERY_PATH}", DISCOVERY_PATH,
                                      params={"tenantId": self._tenant_id}, ok=AUTH_OK).data
                gateway, token = (data.get("gatewayUrl"), data.get("tokenUrl")) if isinstance(data, Mapping) \
                    else (None, None)
                if not isinstance(gateway, str) or not isinstance(token, str) or not gateway or not token:
                    raise PermanentError("gateway discovery named no gatewayUrl/tokenUrl", system=SYSTEM,
                                         operation=DISCOVERY_PATH, code="bad_shape")
                self._addresses = Addresses(gateway.rstrip("/"), token.rstrip("/"))
            return self._addresses

    def _fetch_token(self) -> kit.Credential[str]:
        params = {"appKey": self._app_key, "timestamp": str(int(time.time() * 1000))}
        params["signature"] = sign(params, self._app_secret.get_secret_value())
        data = self._exchange("GET", f"{self.addresses().token_url}/{TOKEN_PATH}", "getAccessToken",
                              params=params, ok=AUTH_OK).data
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise RetryableError("token service returned no access_token", system=SYSTEM,
                                 operation="getAccessToken", code="bad_shape")
        return kit.Credential(token, float(data.get("expire") or 7200))

    # -- transport ---------------------------------------------------------------------------

    def _exchange(
        self, method: str, url: str, operation: str, *, params: Mapping[str, Any] | None = None,
        body: Any = None, ok: str = BUSINESS_OK, auth: httpx.Auth | None = None, key: str | None = None,
        external_id: str | None = None, accept: frozenset[str] = frozenset(),
    ) -> Reply:
        """One audited exchange; the reply when its ``code`` is ``ok`` or in ``accept``, else the
        hub error for the code (or for the HTTP status, without an envelope)."""
        call = kit.CallContext(SYSTEM, operation, key=key, external_id=external_id)
        content = None if body is None else json.dumps(body, ensure_ascii=False, default=_json_default).encode()
        request = self._http.build_request(method, url, params=dict(params or {}), content=content)

        def read(response: httpx.Response, _timer: object) -> Reply:
            if response.content.strip().decode("utf-8", "replace") == INVALID_TOKEN_TEXT:
                raise CODES.error(310036, INVALID_TOKEN_TEXT, call)
            payload = kit.peek_json(response) if response.status_code >= 300 else None
            code = reply_code(payload)
            if code is None:  # no vendor envelope: the kit's HTTP classification
                kit.raise_for_status(response, call)
                payload = kit.parse_json(response, call, parse_float=Decimal)
                code = reply_code(payload)
            if isinstance(payload, Mapping) and (code == ok or code in accept):
                return Reply(code or ok, payload.get("data"), _message(payload))
            if code is None:
                raise RetryableError("reply has no code", **call.context("bad_json"))
            raise CODES.error(_numeric(code), _message(payload), call)

        return kit.send(self._http, request, call, self._observer, read, auth=auth)

    def call(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
             key: str | None = None, external_id: str | None = None) -> Any:
        """A business call of ``/yonbip/<path>`` with the token; returns ``data``."""
        return self.reply(method, path, body=body, params=params, key=key, external_id=external_id).data

    def reply(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
              key: str | None = None, external_id: str | None = None,
              accept: frozenset[str] = frozenset()) -> Reply:
        """A business call whose codes in ``accept`` are answers, not errors (idempotent saves);
        a call of a quota'd API waits for its pacer first."""
        url = f"{self.addresses().gateway_url}/yonbip/{path}"
        pacer = self.pacers.get(path)
        if pacer is not None:
            # the token first (its fetch is not a quota'd call): fetched inside the paced send
            # it would delay the call's arrival past the departure the pacer recorded
            self.auth.current()
            pacer.wait()
        return self._exchange(method, url, path, params=params, body=body, auth=self.auth, key=key,
                              external_id=external_id, accept=accept)

    def check(self) -> None:
        """Reachability and credentials (``hub doctor``): discovery and a token."""
        self.auth.current()

    # -- customers (merchant) --------------------------------------------------------------

    def merchant_page(self, page_index: int, page_size: int, **filters: Any) -> list[Json]:
        """One page of ``merchant/newlist``: ``data`` is a bare array (§2.5); a paged
        ``{recordList}`` object is tolerated [UNC]."""
        body = {"pageIndex": page_index, "pageSize": min(max(page_size, 1), MAX_CUSTOMER_PAGE), **filters}
        with self._read_slots:
            data = self.call("POST", CUSTOMER_LIST, body=body)
        return _records(data, CUSTOMER_LIST)

    def merchant_pages(self, page_size: int, **filters: Any) -> Iterator[list[Json]]:
        """Every row of ``merchant/newlist`` for ``filters``, a window at a time, while the
        tenant may edit or delete customers: the list documents no order and no total (§2.5),
        so windows of at most ``page_size`` rows overlap and each must hold an unchanged row
        of the one before (:func:`~connectors.kit.paging.overlapping_pages`; rows matched by
        ``id``); a list that keeps moving under it raises RetryableError ``unstable_list``."""
        yield from kit.overlapping_pages(lambda index, size: self.merchant_page(index, size, **filters), page_size,
                                         key=_row_key, call=kit.CallContext(SYSTEM, CUSTOMER_LIST))

    def merchant_insert(self, data: Mapping[str, Any], *, key: str | None = None) -> Saved:
        """``merchant/idempotent/newinsert`` (``data.resubmitCheckKey`` makes a resend replay)."""
        reference = str(data.get("code") or "") or None
        reply = self.reply("POST", "digitalModel/merchant/idempotent/newinsert", body={"data": dict(data)},
                           key=key, external_id=reference, accept=DUPLICATE_CODES)
        return _saved(reply, "digitalModel/merchant/idempotent/newinsert", reference)

    # -- paged lists (recordList) -----------------------------------------------------------

    def list_page(self, path: str, page_index: int, page_size: int, **filters: Any) -> ListPage:
        """One page of a paged list (orders: one row per line; AR: pageSize ≤ 500, §2.5)."""
        body = {"pageIndex": page_index, "pageSize": min(max(page_size, 1), MAX_LIST_PAGE), **filters}
        with self._read_slots:
            data = self.call("POST", path, body=body)
        return _list_page(data, page_index, path)

    def list_pages(self, path: str, page_size: int, **filters: Any) -> Iterator[ListPage]:
        """Every page of a paged list by page number, to a short page (the page count is not
        trusted alone: rows that move while paging change it). For lists that do not change
        while read (staff); the incremental streams walk by keyset instead
        (:func:`connectors.yonyou.streams.keyset_pages`)."""
        paginator = kit.PageNumberPaginator(page_size, count=_row_count, page_param="page_index",
                                            size_param="page_size")
        yield from kit.walk(lambda p: self.list_page(path, **p, **filters), paginator,
                            call=kit.CallContext(SYSTEM, path))

    # -- sales orders ----------------------------------------------------------------------

    def order_detail(self, order_id: str) -> Json:
        """``sd/voucherorder/detail?id=``: the order with its ``orderDetails``."""
        with self._read_slots:
            data = self.call("GET", ORDER_DETAIL, params={"id": order_id}, external_id=order_id)
        if not isinstance(data, Mapping):
            raise PermanentError("voucherorder/detail carries no order", system=SYSTEM,
                                 operation=ORDER_DETAIL, external_id=order_id, code="bad_shape")
        return dict(data)

    def find_order(self, code: str) -> Json | None:
        """A list row of the order with bill number ``code`` (the list's ``code`` shortcut), or None."""
        page = self.list_page(ORDER_LIST, 1, 10, code=code)
        return next((row for row in page.records if str(row.get("code")) == code), None)

    def order_save(self, data: Mapping[str, Any], *, key: str | None = None) -> Saved:
        """``sd/voucherorder/singleSave``; ``data.resubmitCheckKey`` replays a repeat (§2.4)."""
        reference = str(data.get("code") or "") or None
        reply = self.reply("POST", ORDER_SAVE, body={"data": dict(data)}, key=key,
                           external_id=reference, accept=DUPLICATE_CODES)
        return _saved(reply, ORDER_SAVE, reference)

    def order_batch(self, action: str, ids: Sequence[str], *, key: str | None = None) -> BatchOutcome:
        """``sd/voucherorder/batchsubmit|batchaudit|batchunaudit``: per-call counts (not idempotent)."""
        if action not in ("batchsubmit", "batchaudit", "batchunaudit"):
            raise ValueError(f"unknown batch action {action!r}")
        path = f"sd/voucherorder/{action}"
        data = self.call("POST", path, body={"data": [{"id": i} for i in ids]}, key=key,
                         external_id=",".join(ids)[:200])
        data = data if isinstance(data, Mapping) else {}
        messages = tuple(str(m) for m in data.get("messages") or [] if m)
        return BatchOutcome(int(data.get("count") or len(ids)), int(data.get("sucessCount") or 0),
                            int(data.get("failCount") or 0), messages)


def _row_key(row: Json) -> str | None:
    """A list row's ``id`` (None when it has none: such a row never anchors a window)."""
    found = row.get("id")
    return None if found in (None, "") else str(found)


def _row_count(page: ListPage) -> int:
    return len(page.records)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _records(data: Any, operation: str) -> list[Json]:
    if isinstance(data, Mapping) and isinstance(data.get("recordList"), list):
        data = data["recordList"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise PermanentError("list reply carries no rows", system=SYSTEM, operation=operation, code="bad_shape")
    # a row that is not an object travels as a record the engine quarantines with this reason
    return [dict(row) if isinstance(row, Mapping) else {UNREADABLE: f"list row is {shown(row)}, not an object",
                                                         "row": row} for row in data]


def _list_page(data: Any, page_index: int, operation: str) -> ListPage:
    if not isinstance(data, Mapping):
        return ListPage(_records(data, operation), page_index)
    count, pages = data.get("recordCount"), data.get("pageCount")
    return ListPage(_records(data, operation), int(data.get("pageIndex") or page_index),
                    int(pages) if isinstance(pages, int) else None, int(count) if isinstance(count, int) else None)


def _saved(reply: Reply, operation: str, reference: str | None) -> Saved:
    """A save's ``data``: an object or a one-element list with ``id`` and ``code``; a duplicate
    code (§2.4: the key was used over an hour ago) carries the earlier document's ``id``."""
    data = reply.data[0] if isinstance(reply.data, list) and reply.data else reply.data
    if isinstance(data, Mapping) and data.get("id") not in (None, ""):
        return Saved(str(data["id"]), str(data.get("code") or reference or ""), duplicate=reply.code in DUPLICATE_CODES)
    raise PermanentError("save reply carries no id", system=SYSTEM, operation=operation, external_id=reference,
                         code="bad_shape")


__all__ = [
    "CODES",
    "CUSTOMER_LIST",
    "MAX_CUSTOMER_PAGE",
    "MAX_LIST_PAGE",
    "ORDER_DETAIL",
    "ORDER_LIST",
    "ORDER_SAVE",
    "QUOTA_APIS",
    "RECEIVABLE_LIST",
    "STAFF_LIST",
    "Addresses",
    "BatchOutcome",
    "ListPage",
    "Reply",
    "Saved",
    "YonyouAuth",
    "YonyouBusinessError",
    "YonyouClient",
    "reply_code",
    "sign",
]
