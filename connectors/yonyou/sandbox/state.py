"""The YonBIP tenant's state and rules, as the sandbox keeps them (reference ``erp-apis.md`` §2, §3).

Archives (organisations, transaction types, products, staff, customers) and vouchers (sales
orders with lines, AR events) in memory, with the rules a real tenant applies:

- ``merchant/idempotent/newinsert`` and ``voucherorder/singleSave`` take ``resubmitCheckKey``
  inside ``data`` (§2.4): a repeat within ``replay_window_s`` (1 h) replays the first reply
  exactly; later it answers the duplicate code ``10004`` with ``data.id`` of the first
  document. Keys are per API.
- ``singleSave`` requires ``_status`` on the header and on every line, known archive codes
  (customer, org, transaction type, product), ``oriSum`` = ``qty`` × ``oriTaxUnitPrice`` per
  line and ``payMoney`` = the sum of the lines (§2.5); a code already used is refused.
  Failures answer ``999`` with a message, as YonBIP's business failures do; a customer
  without a name answers ``code 0`` (§2.3).
- Saved ≠ effective: orders start at ``verifystate`` 0 (open); ``batchsubmit`` takes 0 → 1,
  ``batchaudit`` 1 → 2, per order, answering ``count/sucessCount/failCount/messages``.
- Every change stamps ``pubts`` with the tenant clock, later than any seeded stamp.

Lists answer the shapes of §2.5: ``merchant/newlist`` a bare array (in creation order, or in
``pubts`` order with ``merchant_order="changed"``); ``voucherorder/list`` one
row per order line (line fields prefixed ``orderDetails_``), paged with ``recordCount`` and
``pageCount``; ``EFI/arPublicEvent/list`` paged, ``pageSize`` at most 500. Field names the
reference does not give are the connector mapping's guesses (``connectors.yonyou.mapping``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DUPLICATE_CODE = "10004"
MAX_AR_PAGE = 500
MAX_MERCHANT_PAGE = 5000
LINE_PREFIX = "orderDetails_"
HEADER_KEYS = ("id", "code", "vouchdate", "agentId", "agentId_code", "agentId_name", "salesOrgId", "salesOrgId_code",
               "transactionTypeId_code", "corpContact", "corpContact_code", "corpContactUserName", "verifystate",
               "payMoney", "orderPrices!currency", "orderPrices!exchRate", "orderPrices!taxInclusive", "memo", "pubts")
LINE_KEYS = ("id", "lineno", "productId", "productId_code", "productId_name", "qty", "oriTaxUnitPrice", "oriSum",
             "taxRate", "memo")
Json = dict[str, Any]


class Refused(Exception):
    """A request the tenant refuses: answered HTTP 200 with ``code`` and ``message``."""

    def __init__(self, message: str, code: str = "999") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Replay:
    """The first reply to a ``resubmitCheckKey``, and when it was given."""

    reply: Json
    at: float
    document_id: str


@dataclass
class YonyouState:
    """One tenant's data; every method takes the lock (handlers run on several threads)."""

    today: dt.date
    replay_window_s: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    orgs: set[str] = field(default_factory=set)
    transaction_types: set[str] = field(default_factory=set)
    currencies: set[str] = field(default_factory=lambda: {"CNY", "USD", "HKD", "EUR"})
    products: dict[str, Json] = field(default_factory=dict)  # code → product
    staff: dict[str, Json] = field(default_factory=dict)  # code → person
    merchants: dict[str, Json] = field(default_factory=dict)  # id → customer
    # The order ``merchant/newlist`` answers in: undocumented (§2.5), so either of two guesses:
    # "created" (insertion order: an edit leaves a row in place) or "changed" (``pubts``, then
    # id: an edit moves the row to the end, shifting every row after it).
    merchant_order: str = "created"
    orders: dict[str, Json] = field(default_factory=dict)  # id → order with "orderDetails"
    receivables: dict[str, Json] = field(default_factory=dict)  # id → AR event row
    lock: threading.RLock = field(default_factory=threading.RLock)
    _replays: dict[tuple[str, str], Replay] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1_900_000_000_000_000_001))
    _last_stamp: dt.datetime | None = None

    # -- identities and time -----------------------------------------------------------------

    def new_id(self) -> str:
        """A YonBIP-style long id (as text: JSON readers lose precision on 19 digits)."""
        return str(next(self._ids))

    def stamp(self) -> str:
        """A ``pubts`` for a change now: the wall clock, never before the seeded data."""
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None, microsecond=0)
        floor = dt.datetime(self.today.year, self.today.month, self.today.day)
        now = max(now, floor)
        if self._last_stamp is not None and now < self._last_stamp:
            now = self._last_stamp
        self._last_stamp = now
        return now.strftime(TIME_FORMAT)

    def merchant_by_code(self, code: str) -> Json | None:
        """The customer with ``code`` (or whose id is ``code``)."""
        found = self.merchants.get(code)
        return found if found is not None else next((m for m in self.merchants.values() if m["code"] == code), None)

    def order_by_code(self, code: str) -> Json | None:
        """The sales order with bill number ``code``."""
        return next((o for o in self.orders.values() if o["code"] == code), None)

    # -- idempotency -------------------------------------------------------------------------

    def idempotent(self, api: str, data: Mapping[str, Any], save: Callable[[], tuple[Json, str]]) -> Json:
        """Apply ``save`` once per ``resubmitCheckKey`` (§2.4): replay within the window, the
        duplicate code with the first document's id after it."""
        key = str(data.get("resubmitCheckKey") or "")
        if len(key) > 32:
            raise Refused("resubmitCheckKey 长度不能超过32位", "310015")
        if key and (api, key) in self._replays:
            earlier = self._replays[(api, key)]
            if self.clock() - earlier.at <= self.replay_window_s:
                return earlier.reply
            return {"code": DUPLICATE_CODE, "message": "重复提交，单据已存在", "data": {"id": earlier.document_id}}
        reply, document_id = save()
        if key:
            self._replays[(api, key)] = Replay(reply, self.clock(), document_id)
        return reply

    def age_replays(self, seconds: float) -> None:
        """Move every remembered key ``seconds`` into the past (tests of the replay window)."""
        for replay in self._replays.values():
            replay.at -= seconds

    # -- customers ---------------------------------------------------------------------------

    def merchant_list(self, body: Mapping[str, Any]) -> list[Json]:
        """``merchant/newlist``: rows in ``merchant_order``, filtered; ``data`` is the bare page."""
        index, size = _paging(body, MAX_MERCHANT_PAGE)
        since = str(body.get("pubts") or "")
        wanted = {k: str(body[k]) for k in ("code", "creditCode") if body.get(k)}
        name = str(body.get("name") or "")
        with self.lock:
            rows = [m for m in self.merchants.values()
                    if (not since or m["pubts"] >= since) and all(str(m.get(k) or "") == v for k, v in wanted.items())
                    and (not name or name in m["name"]["simplifiedName"])]
            if self.merchant_order == "changed":
                rows.sort(key=lambda m: (m["pubts"], len(m["id"]), m["id"]))
            return [_copy(m) for m in rows[(index - 1) * size:index * size]]

    def merchant_insert(self, data: Mapping[str, Any]) -> Json:
        """``merchant/idempotent/newinsert``."""
        with self.lock:
            return self.idempotent("merchant/idempotent/newinsert", data, lambda: self._insert_merchant(data))

    def _insert_merchant(self, data: Mapping[str, Any]) -> tuple[Json, str]:
        name = data.get("name")
        simplified = str(name.get("simplifiedName") or name.get("zh_CN") or "") if isinstance(name, Mapping) else ""
        if not simplified.strip():
            raise Refused("客户名称不能为空!", "0")
        code = str(data.get("code") or "").strip() or f"YYC{len(self.merchants) + 1:05d}"
        if self.merchant_by_code(code) is not None:
            raise Refused(f"客户编码 {code} 已存在")
        org = str(data.get("createOrgCode") or "")
        if org not in self.orgs:
            raise Refused(f"管理组织 {org or '空'} 不存在")
        credit = str(data.get("creditCode") or "").strip().upper() or None
        merchant_id = self.new_id()
        merchant: Json = {"id": merchant_id, "code": code, "name": {"simplifiedName": simplified.strip()},
                    "creditCode": credit, "licenseType": data.get("licenseType"), "createOrgCode": org,
                    "belongOrgCode": org, "customerClass_name": None, "contactTel": None, "address": None,
                    "professSalesman_code": None, "transCurrency_code": "CNY", "stopstatus": False,
                    "pubts": self.stamp()}
        self.merchants[merchant_id] = merchant
        return {"code": "200", "success": True, "message": "操作成功",
                "data": [{"id": merchant_id, "code": code}]}, merchant_id

    # -- sales orders ------------------------------------------------------------------------

    def order_list(self, body: Mapping[str, Any]) -> Json:
        """``voucherorder/list``: one row per line, filtered, ordered, paged."""
        index, size = _paging(body, MAX_AR_PAGE)
        with self.lock:
            orders = [o for o in self.orders.values() if _matches(o, body)]
            orders.sort(key=_ordering(body.get("queryOrders")))
            rows = [{**{k: order.get(k) for k in HEADER_KEYS}, **{LINE_PREFIX + k: line.get(k) for k in LINE_KEYS}}
                    for order in orders for line in order["orderDetails"]]
            return _paged(rows, index, size)

    def order_detail(self, order_id: str) -> Json:
        """``voucherorder/detail``: the header with its ``orderDetails``."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise Refused(f"单据不存在（id {order_id}）")
            return _copy(order)

    def order_save(self, data: Mapping[str, Any]) -> Json:
        """``voucherorder/singleSave``."""
        with self.lock:
            return self.idempotent("sd/voucherorder/singleSave", data, lambda: self._save_order(data))

    def _save_order(self, data: Mapping[str, Any]) -> tuple[Json, str]:
        if data.get("_status") != "Insert":
            raise Refused("表头 _status 不能为空，新增时应为 Insert")
        details = data.get("orderDetails")
        if not isinstance(details, list) or not details:
            raise Refused("订单表体 orderDetails 不能为空")
        customer = self.merchant_by_code(str(data.get("agentId") or ""))
        if customer is None:
            raise Refused(f"客户 {data.get('agentId')} 不存在")
        org = str(data.get("salesOrgId") or "")
        if org not in self.orgs:
            raise Refused(f"销售组织 {org or '空'} 不存在")
        if str(data.get("transactionTypeId") or "") not in self.transaction_types:
            raise Refused(f"交易类型 {data.get('transactionTypeId')} 不存在")
        currency = str(data.get("orderPrices!currency") or "")
        if currency not in self.currencies:
            raise Refused(f"币种 {currency or '空'} 不存在")
        lines = [self._order_line(detail, n) for n, detail in enumerate(details, 1)]
        total = sum((line["oriSum"] for line in lines), Decimal(0))
        pay = _decimal(data.get("payMoney"), "payMoney")
        if pay != total:
            raise Refused(f"表头 payMoney {pay} 与表体价税合计 {total} 不一致")
        code = str(data.get("code") or "").strip() or f"SO{self.today:%Y%m%d}{len(self.orders) + 1:06d}"
        if self.order_by_code(code) is not None:
            raise Refused(f"单据编号 {code} 已存在，不能重复")
        staff = self.staff.get(str(data.get("corpContact") or ""))
        order = {"id": self.new_id(), "code": code, "vouchdate": str(data.get("vouchdate") or ""),
                 "agentId": customer["id"], "agentId_code": customer["code"],
                 "agentId_name": customer["name"]["simplifiedName"], "salesOrgId": org, "salesOrgId_code": org,
                 "transactionTypeId_code": data.get("transactionTypeId"),
                 "corpContact": staff["id"] if staff else None, "corpContact_code": staff["code"] if staff else None,
                 "corpContactUserName": staff["name"] if staff else None, "verifystate": 0, "payMoney": total,
                 "orderPrices!currency": currency, "orderPrices!exchRate": data.get("orderPrices!exchRate", 1),
                 "orderPrices!taxInclusive": True, "memo": data.get("memo"), "pubts": self.stamp(),
                 "orderDetails": [{"id": self.new_id(), **line} for line in lines]}
        self.orders[order["id"]] = order
        reply = {"code": "200", "message": "操作成功",
                 "data": {"id": order["id"], "code": code, "verifystate": 0, "payMoney": total}}
        return reply, order["id"]

    def _order_line(self, detail: Any, lineno: int) -> Json:
        where = f"表体第{lineno}行"
        if not isinstance(detail, Mapping) or detail.get("_status") != "Insert":
            raise Refused(f"{where} _status 不能为空，新增时应为 Insert")
        product = self.products.get(str(detail.get("productId") or ""))
        if product is None:
            raise Refused(f"{where}物料 {detail.get('productId')} 不存在")
        qty = _decimal(detail.get("qty"), f"{where} qty")
        price = _decimal(detail.get("oriTaxUnitPrice"), f"{where} oriTaxUnitPrice")
        amount = _decimal(detail.get("oriSum"), f"{where} oriSum")
        if qty <= 0:
            raise Refused(f"{where}数量必须大于0")
        if (qty * price).quantize(CENT, ROUND_HALF_UP) != amount:
            raise Refused(f"{where}价税合计 {amount} 不等于 数量×含税单价 {qty * price}")
        return {"lineno": detail.get("lineno", lineno), "productId": product["id"], "productId_code": product["code"],
                "productId_name": product["name"], "qty": qty, "oriTaxUnitPrice": price, "oriSum": amount,
                "taxRate": _decimal(detail.get("taxRate", 0), f"{where} taxRate"), "memo": detail.get("memo")}

    def order_batch(self, action: str, items: Any) -> Json:
        """``batchsubmit`` (0 → 1) / ``batchaudit`` (1 → 2) / ``batchunaudit`` (2 → 1), per order."""
        if not isinstance(items, list):
            raise Refused("data 应为数组 [{\"id\": …}]", "310023")
        before, after, verb = {"batchsubmit": (0, 1, "提交"), "batchaudit": (1, 2, "审核"),
                               "batchunaudit": (2, 1, "弃审")}[action]
        messages, infos = [], []
        with self.lock:
            for item in items:
                order = self.orders.get(str(item.get("id") if isinstance(item, Mapping) else ""))
                if order is None:
                    messages.append(f"单据不存在（id {item}）")
                elif order["verifystate"] != before:
                    messages.append(f"单据[{order['code']}]当前状态不能{verb}")
                else:
                    order["verifystate"] = after
                    order["pubts"] = self.stamp()
                    infos.append({"id": order["id"], "code": order["code"], "verifystate": after})
        return {"count": len(items), "sucessCount": len(infos), "failCount": len(messages), "messages": messages,
                "infos": infos}

    # -- receivables and staff ---------------------------------------------------------------

    def receivable_list(self, body: Mapping[str, Any]) -> Json:
        """``EFI/arPublicEvent/list``: AR event rows, filtered, paged (pageSize ≤ 500)."""
        index, size = _paging(body, MAX_AR_PAGE)
        customers = {str(c) for c in body.get("customer.code") or []}
        with self.lock:
            rows = [_copy(r) for r in self.receivables.values()
                    if _matches(r, body) and (not customers or r["customer_code"] in customers)]
            rows.sort(key=_ordering(body.get("queryOrders")))
            return _paged(rows, index, size)

    def staff_list(self, body: Mapping[str, Any]) -> Json:
        """The staff archive (path and fields: the connector's guess, see its client)."""
        index, size = _paging(body, MAX_AR_PAGE)
        with self.lock:
            return _paged([_copy(p) for p in self.staff.values()], index, size)

    def summary(self) -> Json:
        """Counts for the admin endpoint and the tests."""
        with self.lock:
            return {"merchants": len(self.merchants), "orders": len(self.orders),
                    "order_lines": sum(len(o["orderDetails"]) for o in self.orders.values()),
                    "receivables": len(self.receivables), "staff": len(self.staff), "products": len(self.products),
                    "resubmit_keys": len(self._replays)}


def _paging(body: Mapping[str, Any], most: int) -> tuple[int, int]:
    try:
        index, size = int(body.get("pageIndex") or 1), int(body.get("pageSize") or 10)
    except (TypeError, ValueError):
        raise Refused("pageIndex/pageSize 必须是整数", "310023") from None
    if index < 1 or size < 1:
        raise Refused("pageIndex/pageSize 必须大于0", "310015")
    if size > most:
        raise Refused(f"pageSize 不能大于{most}", "310015")
    return index, size


def _paged(rows: list[Json], index: int, size: int) -> Json:
    return {"pageIndex": index, "pageSize": size, "recordCount": len(rows), "pageCount": -(-len(rows) // size),
            "recordList": rows[(index - 1) * size:index * size]}


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "neq": lambda a, b: a != b, "gt": lambda a, b: a > b, "egt": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "elt": lambda a, b: a <= b,
}


def _matches(row: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """The top-level ``code`` shortcut and ``simpleVOs`` conditions (operators [UNC], §4.6)."""
    if body.get("code") and row.get("code") != body["code"]:
        return False
    for condition in body.get("simpleVOs") or []:
        if not isinstance(condition, Mapping):
            raise Refused("simpleVOs 格式错误", "310023")
        op = _OPS.get(str(condition.get("op")))
        if op is None:
            raise Refused(f"simpleVOs 不支持的操作符 {condition.get('op')}", "310015")
        value = row.get(str(condition.get("field")))
        if value is None or not op(str(value), str(condition.get("value1"))):
            return False
    return True


def _ordering(orders: Any) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``queryOrders`` ascending by the named fields (ids compare as numbers), else by id."""
    fields = [str(o.get("field")) for o in orders or [] if isinstance(o, Mapping)] or ["id"]
    return lambda row: tuple((len(str(row.get(f) or "")), str(row.get(f) or "")) if f == "id"
                             else (0, str(row.get(f) or "")) for f in fields)


def _decimal(value: Any, what: str) -> Decimal:
    try:
        if isinstance(value, bool) or value is None or value == "":
            raise InvalidOperation
        found = Decimal(str(value))
        if not found.is_finite():
            raise InvalidOperation
        return found
    except InvalidOperation:
        raise Refused(f"{what} 不是有效数字", "310023") from None


def _copy(record: Mapping[str, Any]) -> Json:
    return {k: ([dict(x) for x in v] if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for k, v in record.items()}


__all__ = ["DUPLICATE_CODE", "Refused", "YonyouState"]
