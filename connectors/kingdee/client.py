"""The only module that speaks HTTP to Kingdee K/3 Cloud (WebAPI, reference ``erp-apis.md`` §1).

Shape of the conversation:

- every operation is ``POST {base}/Kingdee.BOS.WebApi.ServicesStub.<Service>.<Method>.common.kdsvc``
  with a JSON body; business failures come back as HTTP 200 (§1.1, §1.3);
- authentication lives in :class:`KingdeeAuth`, the connector kit's
  :class:`~connectors.kit.auth.TokenAuth` with Kingdee's hooks: signed headers exactly as
  the official SDK computes them (default), or a ``LoginByAppSecret`` session cookie (§1.2).
  When a reply says "session lost" (HTTP 200, ``MsgCode`` 1) the auth re-authenticates once
  and resends; the kit's single flight makes N threads that hit the same expired session
  cause one re-login;
- replies are parsed into typed results; failures become the hub's error classes. Transport
  errors, HTTP statuses and non-JSON bodies are the kit's one classification
  (:mod:`connectors.kit.http`); Kingdee adds its body prefix and the MsgCode table
  :data:`MSGCODES`::

      timeout / connection error / HTTP 5xx / 408                        → RetryableError
      HTTP 429 (a gateway; Kingdee itself never sends it, §1.3)          → RateLimitedError
      "response_error:" body (a server exception, §1.3)                  → RetryableError
      MsgCode 1 still after the one re-login (or a refused login)        → AuthExpiredError
      ResponseStatus.IsSuccess false with Errors[FieldName, Message, DIndex]
                                                                         → KingdeeBusinessError
                                                                           (a PermanentError)
      other HTTP 4xx                                                     → PermanentError

Retries of transient errors are deliberately *not* done here beyond the one re-login: the
outbox dispatcher and the sync engine own retry policy (backoff, dead letters, "look the
write up before retrying"), and retrying in two layers multiplies attempts blindly
(DESIGN.md, "Retrying happens in one layer per concern"). A Save is also not idempotent on
the server (§1.4), so a blind client-side retry of a lost Save could create a twin.

Every HTTP exchange is reported to the optional ``observer`` (``hub.calls``) with
``system="kingdee"`` and the service method name as operation; exception texts and reports
never contain the AppSecret, the session id or request bodies.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal, TypeVar

import httpx
from pydantic import SecretStr

from canonical_model.storable import shown
from connectors import kit
from connectors.kingdee import signing
from hub.calls import CallObserver, ignore_call
from hub.contracts import UNREADABLE
from hub.errors import AuthExpiredError, PermanentError, RetryableError

SYSTEM = "kingdee"
DYNAMIC_FORM_SERVICE = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
AUTH_SERVICE = "Kingdee.BOS.WebApi.ServicesStub.AuthService."
# Documented page maximum of ExecuteBillQuery [UNC]; a server that caps silently would make a
# larger page look "short" and end paging early, so the client never asks for more.
MAX_PAGE_SIZE = 2000
SESSION_COOKIES = ("kdservice-sessionid", "ASP.NET_SessionId")
USER_AGENT = "crm-erp-hub kingdee-connector/0.1"

AuthMode = Literal["signed", "session"]
Cookies = dict[str, str]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Typed results and errors

@dataclass(frozen=True)
class FieldError:
    """One ``ResponseStatus.Errors`` entry: offending field key, message, record index."""

    field: str | None
    message: str
    index: int = 0

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message} [DIndex {self.index}]"


@dataclass(frozen=True)
class SuccessEntity:
    """One ``SuccessEntitys`` entry: the document's internal id and number, record index."""

    id: int | None
    number: str | None
    index: int = 0


@dataclass(frozen=True)
class SaveResult:
    """A saved document: internal id (``FID``/``FCUSTID``) and number (``FBillNo``/``FNumber``)."""

    id: int
    number: str


@dataclass(frozen=True)
class RecordOutcome:
    """Result of one model in a BatchSave (the call is not atomic)."""

    index: int
    id: int | None = None
    number: str | None = None
    errors: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when this record was saved."""
        return not self.errors


class KingdeeBusinessError(PermanentError):
    """The data centre refused the request (``IsSuccess: false``); never retried.

    ``field_errors`` holds the parsed ``Errors`` entries so that callers can react to a
    specific field (for example a duplicate ``FBillNo``).
    """

    field_errors: tuple[FieldError, ...] = ()


# MsgCode → hub error (§1.3): only 1 ("context lost / session expired") has a stable meaning;
# every other failure is a refusal of the data (0, 9, 11… seen, no table exists).
MSGCODES = kit.CodeTable(
    {1: kit.CodeRule(AuthExpiredError, "session lost")},
    default=kit.CodeRule(KingdeeBusinessError), code_prefix="MsgCode ",
)


def _status_of(payload: Any) -> Mapping[str, Any] | None:
    """The ``ResponseStatus`` object of any reply shape, or None when there is none.

    Shapes: ``{"Result": {"ResponseStatus": …}}`` (writes, View), and for queries the error
    wrapped into the result list, ``[[{"Result": {"ResponseStatus": …}}]]`` (§1.4).
    """
    if isinstance(payload, Mapping):
        result = payload.get("Result")
        if isinstance(result, Mapping):
            status = result.get("ResponseStatus")
            return status if isinstance(status, Mapping) else None
        status = payload.get("ResponseStatus")
        return status if isinstance(status, Mapping) else None
    if isinstance(payload, list) and payload and isinstance(payload[0], list) and payload[0]:
        first = payload[0][0]
        if isinstance(first, Mapping) and "Result" in first:
            return _status_of(first)
    return None


def _field_errors(status: Mapping[str, Any]) -> tuple[FieldError, ...]:
    errors = []
    for item in status.get("Errors") or []:
        if not isinstance(item, Mapping):
            continue
        try:
            index = int(item.get("DIndex") or 0)
        except (TypeError, ValueError):
            index = 0
        field_name = item.get("FieldName")
        errors.append(FieldError(str(field_name) if field_name else None, str(item.get("Message") or ""), index))
    return tuple(errors)


def _successes(status: Mapping[str, Any]) -> list[SuccessEntity]:
    out = []
    for item in status.get("SuccessEntitys") or []:
        if not isinstance(item, Mapping):
            continue
        raw_id = item.get("Id")
        try:
            entity_id = int(raw_id) if raw_id not in (None, "") else None
        except (TypeError, ValueError):
            entity_id = None
        number = item.get("Number")
        out.append(SuccessEntity(entity_id, str(number) if number not in (None, "") else None,
                                 int(item.get("DIndex") or 0)))
    return out


def _msg_code(status: Mapping[str, Any]) -> int | None:
    raw = status.get("MsgCode")
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _unreadable_row(position: int, raw: Any, expected: int) -> dict[str, Any]:
    """An ExecuteBillQuery row that does not line up with the field keys asked for: which
    value belongs to which field is unknown, so the row becomes a record the engine
    quarantines with this reason (the values kept under ``row``) instead of costing the page."""
    if isinstance(raw, list):
        why = f"has {len(raw)} values for the {expected} field keys asked for"
    else:
        why = f"is {shown(raw)}, not a list of {expected} values"
    return {UNREADABLE: f"ExecuteBillQuery row {position} of its page {why}; its values cannot be matched to "
                        "fields", "row": raw}


def _raise_for_status(operation: str, status: Mapping[str, Any] | None, *, external_id: str | None = None) -> None:
    """Turn a failed ``ResponseStatus`` into the hub's error class (success: return)."""
    if status is None or status.get("IsSuccess") is not False:
        return
    errors = _field_errors(status)
    text = "; ".join(str(e) for e in errors) or "IsSuccess false without error details"
    call = kit.CallContext(SYSTEM, operation, external_id=external_id)
    error = MSGCODES.error(_msg_code(status), text[:1000], call)
    if isinstance(error, KingdeeBusinessError):
        error.field_errors = errors
    raise error


def _session_lost(status: Mapping[str, Any] | None) -> bool:
    return status is not None and status.get("IsSuccess") is False and MSGCODES.means_expired(_msg_code(status))


def _session_from_response(response: httpx.Response) -> dict[str, str]:
    """Session cookies the server issued in this reply (Set-Cookie or the id header)."""
    found: dict[str, str] = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0].strip()
        if name.strip() in SESSION_COOKIES and value:
            found[name.strip()] = value
    header_sid = response.headers.get("kdservice-sessionid")
    if header_sid and "kdservice-sessionid" not in found:
        found["kdservice-sessionid"] = header_sid
    return found


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Kingdee takes JSON numbers; amounts in the hub are Decimals with ≤ 6 places, which a
        # float carries exactly enough for the server's own rounding.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _no_cookie_jar() -> CookieJar:
    """A jar that stores nothing: the auth alone decides which session cookie is sent."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


# ---------------------------------------------------------------------------------------------
# Authentication

LoginFunction = Callable[[], Cookies]


class KingdeeAuth(kit.TokenAuth[Cookies]):
    """Signed headers or the session cookie; on MsgCode 1 re-authenticates once and resends.

    The credential is the session cookies. Signed mode needs no login: it starts without a
    session, keeps the one the server issues in a reply, and on "session lost" forgets it
    so that the resend re-authenticates by signature alone. Session mode logs in
    (``login``) whenever no session is held. Single flight and generations are the kit's
    (:class:`~connectors.kit.auth.TokenAuth`): N threads hitting the same lost session
    cause one re-login, and a reply to a superseded session cannot bring it back.
    """

    requires_response_body = True

    def __init__(
        self, *, mode: AuthMode, acct_id: str, username: str, app_id: str, app_secret: SecretStr,
        lcid: int, org_num: int, login: LoginFunction | None = None, observer: CallObserver = ignore_call,
    ) -> None:
        if mode == "session" and login is None:
            raise ValueError("session mode needs a login function")
        super().__init__(system=SYSTEM, observer=observer)
        self._mode = mode
        self._acct_id = acct_id
        self._username = username
        self._app_id = app_id
        self._app_secret = app_secret
        self._lcid = lcid
        self._org_num = org_num
        self._login = login
        self.logins = 0

    @property
    def has_session(self) -> bool:
        """True while a session id is held."""
        return "kdservice-sessionid" in (self.held() or {})

    def fetch(self) -> kit.Credential[Cookies]:
        """Session mode: log in (runs under the kit's lock). Signed mode: start without a session."""
        if self._mode == "signed":
            return kit.Credential({})
        assert self._login is not None
        cookies = dict(self._login())
        self.logins += 1
        return kit.Credential(cookies)

    def apply(self, request: httpx.Request, credential: Cookies) -> None:
        """Sign (signed mode, fresh timestamp on every send) and attach the session, if any."""
        if self._mode == "signed":
            path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
            request.headers.update(signing.signed_headers(
                path=path, acct_id=self._acct_id, username=self._username, app_id=self._app_id,
                app_secret=self._app_secret.get_secret_value(), lcid=self._lcid, org_num=self._org_num,
                timestamp=str(int(time.time())),
            ))
        sid = credential.get("kdservice-sessionid")
        if sid:
            request.headers["kdservice-sessionid"] = sid
            request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in credential.items())
        else:
            request.headers.pop("kdservice-sessionid", None)
            request.headers.pop("Cookie", None)

    def rejection(self, response: httpx.Response) -> str | None:
        """HTTP 200 whose ResponseStatus says MsgCode 1 (session lost)."""
        if response.status_code == 200 and _session_lost(_status_of(kit.peek_json(response, marker=b"MsgCode"))):
            return "session lost (MsgCode 1); re-authenticating once"
        return None

    def refreshed(self, response: httpx.Response, credential: Cookies) -> Cookies | None:
        """Session cookies the server issued in this reply, merged into the held ones."""
        issued = _session_from_response(response)
        return {**credential, **issued} if issued else None

    def forget_session(self) -> None:
        """Drop the held session (e.g. after Logout); the next request re-authenticates."""
        self.forget()


# ---------------------------------------------------------------------------------------------
# The client

class KingdeeClient(kit.OwnsHttpClient):
    """Typed access to the K/3 Cloud WebAPI for the hub (sync, thread-safe).

    ``base_url`` is the site root plus virtual directory, e.g. ``https://erp.example.com/k3cloud/``.
    ``app_secret`` is the registered app's AppSecret (signed mode signs with it; session mode
    logs in with it through ``LoginByAppSecret``). ``transport`` lets tests use
    ``httpx.MockTransport``. ``read_page_size`` (≤ 2000) and ``read_overlap_s`` are read by the
    streams (``streams.py``), not by the client itself.
    """

    system = SYSTEM

    def __init__(
        self,
        *,
        base_url: str,
        acct_id: str,
        username: str,
        app_id: str,
        app_secret: SecretStr,
        lcid: int = 2052,
        org_num: int = 0,
        auth_mode: AuthMode = "signed",
        timeout: float = 30.0,
        observer: CallObserver = ignore_call,
        transport: httpx.BaseTransport | None = None,
        read_page_size: int = MAX_PAGE_SIZE,
        read_overlap_s: float = 300.0,
        max_concurrent_reads: int | None = None,
    ) -> None:
        if auth_mode not in ("signed", "session"):
            raise ValueError(f"auth_mode must be 'signed' or 'session', not {auth_mode!r}")
        # How the streams read this system (hub settings page_size / overlap_s). The streams are
        # static registry data, so per-deployment read settings travel with the client.
        self.read_page_size = min(max(read_page_size, 1), MAX_PAGE_SIZE)
        self.read_overlap = dt.timedelta(seconds=max(read_overlap_s, 0.0))
        # Queries in flight at once from this client, whatever number of streams read in
        # parallel and however far each reads ahead (hub.engine.schedule, the order reader's
        # lines beside the next headers): the data centre's limit (KingdeeSettings, a guess).
        # A header page goes before waiting line batches (kit.ReadSlots). None: no limit here
        # (a client built by hand).
        self._read_slots: AbstractContextManager[Any] = nullcontext() if max_concurrent_reads is None \
            else kit.ReadSlots(max(max_concurrent_reads, 1))
        # How many queries a reader may usefully start at once (the order stream's line
        # batches); None: a client without a limit, whose readers keep to two calls in flight.
        self.read_concurrency = None if max_concurrent_reads is None else max(max_concurrent_reads, 1)
        self._base = base_url.rstrip("/") + "/"
        self._observer = observer
        self._credentials = (acct_id, username, app_id, app_secret, lcid)
        headers = {"Content-Type": "application/json", "Accept-Charset": "utf-8", "User-Agent": USER_AGENT}
        # No client-wide auth: business calls pass ``self.auth``, the login goes without it (it
        # must not recurse into the auth flow). The jar stores nothing: the auth alone decides
        # which session cookie is sent.
        self._http = httpx.Client(timeout=timeout, transport=transport, headers=headers, cookies=_no_cookie_jar())
        self.auth = KingdeeAuth(
            mode=auth_mode, acct_id=acct_id, username=username, app_id=app_id, app_secret=app_secret,
            lcid=lcid, org_num=org_num, login=self._login if auth_mode == "session" else None,
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"KingdeeClient(base_url={self._base!r}, acct_id={self._credentials[0]!r})"

    # -- transport -------------------------------------------------------------------------

    def _url(self, service_method: str) -> str:
        return f"{self._base}{service_method}.common.kdsvc"

    def _send(
        self, service_method: str, body: Mapping[str, Any], interpret: Callable[[Any, httpx.Response], T], *,
        auth: httpx.Auth | None, key: str | None = None, external_id: str | None = None,
    ) -> T:
        """POST one audited request; ``interpret`` gets the parsed JSON reply and the response.

        The kit classifies transport trouble and HTTP statuses (module doc); a
        ``response_error:`` body is a server exception (the SDK raises on it too, §1.3) —
        overload and SQL timeouts look like this, so it is worth another attempt later.
        Envelope checks are ``interpret``'s, inside the same audit report.
        """
        call = kit.CallContext(SYSTEM, service_method.rsplit(".", 1)[-1], key=key, external_id=external_id)
        content = json.dumps(body, ensure_ascii=False, default=_json_default).encode("utf-8")
        request = self._http.build_request("POST", self._url(service_method), content=content)

        def read(response: httpx.Response, _timer: object) -> T:
            kit.raise_for_status(response, call)
            if response.text.startswith("response_error:"):
                detail = kit.redact(response.text.removeprefix("response_error:"), 300)
                raise RetryableError(f"server exception: {detail}", **call.context("response_error"))
            return interpret(kit.parse_json(response, call, parse_float=Decimal), response)

        return kit.send(self._http, request, call, self._observer, read, auth=auth)

    def _call(
        self, service_method: str, body: Mapping[str, Any], interpret: Callable[[Any], Any], *,
        key: str | None = None, external_id: str | None = None,
    ) -> Any:
        return self._send(service_method, body, lambda payload, _response: interpret(payload), auth=self.auth,
                          key=key, external_id=external_id)

    def _login(self) -> Cookies:
        """``LoginByAppSecret`` (session mode); returns the session cookies."""
        acct_id, username, app_id, app_secret, lcid = self._credentials
        body = {"acctid": acct_id, "username": username, "appid": app_id,
                "appsecret": app_secret.get_secret_value(), "lcid": lcid}

        def interpret(payload: Any, response: httpx.Response) -> Cookies:
            reply = payload if isinstance(payload, Mapping) else {}
            result_type = reply.get("LoginResultType")
            cookies = _session_from_response(response)
            sid = reply.get("KDSVCSessionId")
            if result_type != 1 or not (sid or cookies.get("kdservice-sessionid")):
                raise AuthExpiredError(f"login refused: {reply.get('Message') or 'no session issued'}", system=SYSTEM,
                                       operation="LoginByAppSecret", code=f"LoginResultType {result_type}")
            if sid and "kdservice-sessionid" not in cookies:
                cookies["kdservice-sessionid"] = str(sid)
            return cookies

        return self._send(AUTH_SERVICE + "LoginByAppSecret", body, interpret, auth=None)

    # -- queries ---------------------------------------------------------------------------

    def execute_bill_query(
        self, form_id: str, field_keys: Sequence[str], filter_string: str = "", order_string: str = "",
        start_row: int = 0, limit: int = MAX_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """One page of ``ExecuteBillQuery``, each row a dict keyed by the field keys as sent."""
        keys = [k.strip() for k in field_keys]
        if not keys:
            raise ValueError("field_keys must not be empty")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        body = {"data": {
            "FormId": form_id, "FieldKeys": ",".join(keys), "FilterString": filter_string,
            "OrderString": order_string, "TopRowCount": 0, "StartRow": max(start_row, 0),
            "Limit": min(limit, MAX_PAGE_SIZE), "SubSystemId": "",
        }}

        def interpret(payload: Any) -> list[dict[str, Any]]:
            _raise_for_status("ExecuteBillQuery", _status_of(payload))
            if not isinstance(payload, list):
                raise PermanentError("ExecuteBillQuery reply is not a list", system=SYSTEM,
                                     operation="ExecuteBillQuery", code="bad_shape")
            return [dict(zip(keys, raw, strict=True)) if isinstance(raw, list) and len(raw) == len(keys)
                    else _unreadable_row(position, raw, len(keys)) for position, raw in enumerate(payload, 1)]

        with self._read_slots:
            result: list[dict[str, Any]] = self._call(DYNAMIC_FORM_SERVICE + "ExecuteBillQuery", body, interpret)
        return result

    def bill_query(
        self, form_id: str, field_keys: Sequence[str], filter_string: str = "", order_string: str = "",
        start_row: int = 0, limit: int = MAX_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """One page of ``BillQuery`` (rows already objects; newer servers only, §1.4)."""
        keys = [k.strip() for k in field_keys]
        body = {"data": {
            "FormId": form_id, "FieldKeys": ",".join(keys), "FilterString": filter_string,
            "OrderString": order_string, "TopRowCount": 0, "StartRow": max(start_row, 0),
            "Limit": min(max(limit, 1), MAX_PAGE_SIZE), "SubSystemId": "",
        }}

        def interpret(payload: Any) -> list[dict[str, Any]]:
            _raise_for_status("BillQuery", _status_of(payload))
            if not isinstance(payload, list) or not all(isinstance(r, Mapping) for r in payload):
                raise PermanentError("BillQuery reply is not a list of objects", system=SYSTEM,
                                     operation="BillQuery", code="bad_shape")
            return [dict(r) for r in payload]

        result: list[dict[str, Any]] = self._call(DYNAMIC_FORM_SERVICE + "BillQuery", body, interpret)
        return result

    def query_pages(
        self, form_id: str, field_keys: Sequence[str], filter_string: str = "", order_string: str = "",
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield StartRow/Limit pages until a short page (the API reports no total, §1.4).

        Offset paging is only stable when nothing in the result moves while reading; the
        incremental streams use keyset paging instead (see ``streams.py``).
        """
        paginator = kit.OffsetPaginator(min(max(page_size, 1), MAX_PAGE_SIZE), offset_param="start_row",
                                    limit_param="limit")
        pages = kit.walk(
            lambda paging: self.execute_bill_query(form_id, field_keys, filter_string, order_string, **paging),
            paginator, call=kit.CallContext(SYSTEM, "ExecuteBillQuery", external_id=form_id),
        )
        for page in pages:
            if page:
                yield page

    def find_bill_numbers(
        self, form_id: str, numbers: Sequence[str], *, number_key: str = "FBillNo",
        field_keys: Sequence[str] = ("FID", "FBillNo", "FDocumentStatus"),
    ) -> dict[str, dict[str, Any]]:
        """Look documents up by number; returns {number: row} for those that exist.

        ``field_keys`` should be header keys (an entry key would return one row per line;
        the first row wins). Numbers go in chunks of 200 into an ``in (...)`` filter.
        """
        keys = list(field_keys)
        if number_key not in keys:
            keys.append(number_key)
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(n for n in numbers if n))
        for start in range(0, len(wanted), 200):
            chunk = wanted[start:start + 200]
            condition = f"{number_key} in ({', '.join(quote_literal(n) for n in chunk)})"
            for page in self.query_pages(form_id, keys, condition, order_string=number_key):
                for row in page:
                    found.setdefault(str(row[number_key]), row)
        return found

    # -- documents -------------------------------------------------------------------------

    def view(self, form_id: str, *, number: str | None = None, id: int | None = None) -> dict[str, Any]:
        """``View`` one document by number or internal id; the object at ``Result.Result``."""
        if not number and not id:
            raise ValueError("give a number or an id")
        body = {"formid": form_id, "data": {"CreateOrgId": 0, "Number": number or "",
                                           "Id": str(id) if id else "", "IsSortBySeq": "false"}}
        reference = number or str(id)

        def interpret(payload: Any) -> dict[str, Any]:
            _raise_for_status("View", _status_of(payload), external_id=reference)
            result = payload.get("Result") if isinstance(payload, Mapping) else None
            document = result.get("Result") if isinstance(result, Mapping) else None
            if not isinstance(document, Mapping):
                raise PermanentError("View reply carries no document", system=SYSTEM, operation="View",
                                     external_id=reference, code="bad_shape")
            return dict(document)

        result: dict[str, Any] = self._call(DYNAMIC_FORM_SERVICE + "View", body, interpret,
                                            external_id=reference)
        return result

    @staticmethod
    def _save_data(
        *, need_update_fields: Sequence[str] | None, need_return_fields: Sequence[str] | None,
        is_delete_entry: bool, auto_submit_and_audit: bool,
    ) -> dict[str, Any]:
        # Option names from §1.4 [COMM]; values as JSON booleans.
        return {
            "NeedUpDateFields": list(need_update_fields or []),
            "NeedReturnFields": list(need_return_fields or []),
            "IsDeleteEntry": is_delete_entry,
            "SubSystemId": "",
            "IsVerifyBaseDataField": False,
            "IsEntryBatchFill": True,
            "ValidateFlag": True,
            "NumberSearch": True,
            "IsAutoSubmitAndAudit": auto_submit_and_audit,
        }

    def save(
        self, form_id: str, model: Mapping[str, Any], *, need_update_fields: Sequence[str] | None = None,
        need_return_fields: Sequence[str] | None = None, is_delete_entry: bool = True,
        auto_submit_and_audit: bool = False, audit_key: str | None = None,
    ) -> SaveResult:
        """``Save`` one model (primary key 0/absent creates, an existing id updates).

        Not idempotent on the server: a caller that lost the reply must look the document up
        by number before saving again (the writers do).
        """
        data = self._save_data(need_update_fields=need_update_fields, need_return_fields=need_return_fields,
                               is_delete_entry=is_delete_entry, auto_submit_and_audit=auto_submit_and_audit)
        data["Model"] = dict(model)
        reference = _model_number(model)

        def interpret(payload: Any) -> SaveResult:
            status = _status_of(payload)
            _raise_for_status("Save", status, external_id=reference)
            successes = _successes(status) if status else []
            result = payload.get("Result") if isinstance(payload, Mapping) else None
            raw_id = successes[0].id if successes else (result or {}).get("Id")
            number = successes[0].number if successes else (result or {}).get("Number")
            if raw_id in (None, "") or not number:
                raise PermanentError("Save reply carries no Id/Number", system=SYSTEM, operation="Save",
                                     external_id=reference, code="bad_shape")
            return SaveResult(int(raw_id), str(number))

        result: SaveResult = self._call(DYNAMIC_FORM_SERVICE + "Save", {"formid": form_id, "data": data},
                                        interpret, key=audit_key, external_id=reference)
        return result

    def batch_save(
        self, form_id: str, models: Sequence[Mapping[str, Any]], *, need_update_fields: Sequence[str] | None = None,
        is_delete_entry: bool = True, auto_submit_and_audit: bool = False, audit_key: str | None = None,
    ) -> list[RecordOutcome]:
        """``BatchSave``: per-record outcomes by DIndex; the call is not atomic (§1.4).

        Does not raise for records the server refused (see ``RecordOutcome.errors``); raises
        for whole-call failures (transport, session). Community guidance keeps batches ≤ 20
        [UNC]; chunking is the caller's choice.
        """
        data = self._save_data(need_update_fields=need_update_fields, need_return_fields=None,
                               is_delete_entry=is_delete_entry, auto_submit_and_audit=auto_submit_and_audit)
        data["Model"] = [dict(m) for m in models]
        count = len(models)

        def interpret(payload: Any) -> list[RecordOutcome]:
            status = _status_of(payload)
            if status is None:
                raise PermanentError("BatchSave reply carries no ResponseStatus", system=SYSTEM,
                                     operation="BatchSave", code="bad_shape")
            if _session_lost(status):
                _raise_for_status("BatchSave", status)
            errors = _field_errors(status)
            successes = {s.index: s for s in _successes(status)}
            outcomes = []
            for index in range(count):
                own = tuple(e for e in errors if e.index == index)
                success = successes.get(index)
                if success is not None and not own:
                    outcomes.append(RecordOutcome(index, success.id, success.number))
                else:
                    outcomes.append(RecordOutcome(index, errors=own or (
                        FieldError(None, "not reported as saved by the server", index),)))
            return outcomes

        result: list[RecordOutcome] = self._call(DYNAMIC_FORM_SERVICE + "BatchSave",
                                                 {"formid": form_id, "data": data}, interpret, key=audit_key)
        return result

    def _status_operation(
        self, method: str, form_id: str, numbers: Sequence[str], ids: Sequence[int], audit_key: str | None,
    ) -> list[SuccessEntity]:
        if not numbers and not ids:
            raise ValueError("give numbers or ids")
        # Ids is a comma-separated *string* (§1.4).
        data = {"CreateOrgId": 0, "Numbers": list(numbers), "Ids": ",".join(str(i) for i in ids)}
        reference = ",".join(list(numbers) + [str(i) for i in ids])[:200]

        def interpret(payload: Any) -> list[SuccessEntity]:
            status = _status_of(payload)
            _raise_for_status(method, status, external_id=reference)
            return _successes(status) if status else []

        result: list[SuccessEntity] = self._call(DYNAMIC_FORM_SERVICE + method, {"formid": form_id, "data": data},
                                                 interpret, key=audit_key, external_id=reference)
        return result

    def submit(self, form_id: str, numbers: Sequence[str] = (), ids: Sequence[int] = (), *,
               audit_key: str | None = None) -> list[SuccessEntity]:
        """``Submit`` documents (status A/D → B)."""
        return self._status_operation("Submit", form_id, numbers, ids, audit_key)

    def audit(self, form_id: str, numbers: Sequence[str] = (), ids: Sequence[int] = (), *,
              audit_key: str | None = None) -> list[SuccessEntity]:
        """``Audit`` documents (status B → C)."""
        return self._status_operation("Audit", form_id, numbers, ids, audit_key)

    def unaudit(self, form_id: str, numbers: Sequence[str] = (), ids: Sequence[int] = (), *,
                audit_key: str | None = None) -> list[SuccessEntity]:
        """``UnAudit`` documents (status C → D)."""
        return self._status_operation("UnAudit", form_id, numbers, ids, audit_key)

    def delete(self, form_id: str, numbers: Sequence[str] = (), ids: Sequence[int] = (), *,
               audit_key: str | None = None) -> list[SuccessEntity]:
        """``Delete`` documents (only from status Z/A/D)."""
        return self._status_operation("Delete", form_id, numbers, ids, audit_key)

    def check(self) -> None:
        """Reachability and credentials (``hub doctor``): one tiny authenticated query."""
        self.execute_bill_query("BD_Currency", ["FNumber"], limit=1)


def quote_literal(value: str) -> str:
    """A FilterString string literal: single quotes, embedded quotes doubled (SQL rules)."""
    return "'" + value.replace("'", "''") + "'"


def _model_number(model: Mapping[str, Any]) -> str | None:
    for key in ("FBillNo", "FNumber"):
        for candidate in (key, key.lower(), key.upper()):
            value = model.get(candidate)
            if isinstance(value, str) and value:
                return value
    return None


__all__ = [
    "MAX_PAGE_SIZE",
    "AuthMode",
    "FieldError",
    "KingdeeAuth",
    "KingdeeBusinessError",
    "KingdeeClient",
    "RecordOutcome",
    "SaveResult",
    "SuccessEntity",
    "quote_literal",
]
