"""The sandbox's state and rules: an in-memory K/3 Cloud data centre.

What is modelled (reference ``erp-apis.md`` §1.3–§1.5 and §3, tags there):

- tables of documents per form (see :mod:`.forms`), with number indexes;
- ``ExecuteBillQuery``/``BillQuery``: FieldKeys with dotted reference keys and entry keys
  (a query touching an entry entity yields one row per entry line), FilterString (a real
  parser, :mod:`.filter`), OrderString, StartRow/Limit/TopRowCount, unknown keys → the
  wrapped error ``[[{"Result": {"ResponseStatus": …}}]]``;
- ``Save``/``BatchSave``/``Draft``: create when the primary key is 0/absent, update otherwise;
  references as ``{"FNumber": …}`` (audited and enabled only with ``IsVerifyBaseDataField``); required
  fields; unique numbers; ``NeedUpDateFields``; ``IsDeleteEntry``; ``IsAutoSubmitAndAudit``;
  server-computed amounts; errors as ``Errors[FieldName, Message, DIndex]``; BatchSave is
  per record, not atomic;
- the document status machine Z/A → B → C → D: Submit A/D→B, Audit B→C, UnAudit C→D,
  Delete only from Z/A/D, no update of B/C documents;
- ``FModifyDate`` set on every change from a monotonic sandbox clock.

Error message texts are guesses modelled on community reports unless the reference quotes
them ("元数据中标识为X的字段不存在", "会话信息已丢失，请重新登录").
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from connectors.kingdee.sandbox import filter as flt
from connectors.kingdee.sandbox.forms import FORMS, FieldDef, FormDef

ENTRIES = "__entries__"  # key of the entry-entity dict inside a stored document
CENT = Decimal("0.01")
PRICE_PLACES = Decimal("0.000001")
DEFAULT_TAX_RATE = Decimal("13")  # guess: the real default comes from the material's tax category
MAX_LIMIT = 2000  # documented page maximum [UNC]; larger Limits are served as 2000 rows (guess)
SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # China has had no DST since 1991

MSG_SESSION_LOST = "会话信息已丢失，请重新登录"
MSGCODE_SESSION = 1
MSGCODE_REFERENCE = 9  # "referenced number missing" [UNC]


# ---------------------------------------------------------------------------------------------
# Errors and envelopes

@dataclass(frozen=True)
class KdError:
    """One entry of ``ResponseStatus.Errors``."""

    message: str
    field_name: str | None = None
    dindex: int = 0

    def as_json(self) -> dict[str, Any]:
        """The wire shape."""
        return {"FieldName": self.field_name, "Message": self.message, "DIndex": self.dindex}


class BusinessError(Exception):
    """A request the data centre refuses; becomes ``IsSuccess: false`` with these errors."""

    def __init__(self, errors: list[KdError], msg_code: int = 0) -> None:
        self.errors = errors
        self.msg_code = msg_code
        super().__init__("; ".join(e.message for e in errors))


def response_status(
    *, errors: Iterable[KdError] = (), successes: Iterable[dict[str, Any]] = (), msg_code: int = 0,
) -> dict[str, Any]:
    """A ``ResponseStatus`` object (§1.3); ``ErrorCode`` 500 appears on failures only."""
    error_list = [e.as_json() for e in errors]
    status: dict[str, Any] = {}
    if error_list:
        status["ErrorCode"] = 500
    status.update({
        "IsSuccess": not error_list,
        "Errors": error_list,
        "SuccessEntitys": list(successes),
        "SuccessMessages": [],
        "MsgCode": msg_code,
    })
    return status


def wrapped_query_error(errors: list[KdError], msg_code: int = 0) -> list[list[dict[str, Any]]]:
    """Query failures come wrapped in the result list: ``[[{"Result": {"ResponseStatus": …}}]]``."""
    return [[{"Result": {"ResponseStatus": response_status(errors=errors, msg_code=msg_code)}}]]


def session_lost_envelope(query: bool) -> Any:
    """MsgCode 1 reply for a caller without a valid session, shaped like its operation's reply."""
    errors = [KdError(MSG_SESSION_LOST)]
    if query:
        return wrapped_query_error(errors, MSGCODE_SESSION)
    return {"Result": {"ResponseStatus": response_status(errors=errors, msg_code=MSGCODE_SESSION)}}


# ---------------------------------------------------------------------------------------------
# Value formatting

def format_datetime(value: dt.datetime) -> str:
    """Kingdee's wire format: ``2024-05-01T10:20:30`` (milliseconds only when non-zero)."""
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def json_value(value: Any) -> Any:
    """A stored value as it appears in query results."""
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in mapping.items()}


# ---------------------------------------------------------------------------------------------
# Tables

@dataclass
class Table:
    """All documents of one form plus a case-insensitive number index."""

    form: FormDef
    docs: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_number: dict[str, int] = field(default_factory=dict)
    next_id: int = 100001
    next_entry_id: int = 100001
    number_seq: int = 0

    def insert(self, doc: dict[str, Any]) -> None:
        """Store a complete document (seed or validated save) and index it."""
        pk = doc[self.form.pk]
        self.docs[pk] = doc
        number = doc.get(self.form.number_key)
        if number:
            self.by_number[str(number).casefold()] = pk
        self.next_id = max(self.next_id, pk + 1)

    def remove(self, pk: int) -> None:
        """Delete a document and its index entry."""
        doc = self.docs.pop(pk)
        number = doc.get(self.form.number_key)
        if number:
            self.by_number.pop(str(number).casefold(), None)

    def find_number(self, number: str) -> dict[str, Any] | None:
        """The document with this number (case-insensitive), or None."""
        pk = self.by_number.get(number.casefold())
        return self.docs.get(pk) if pk is not None else None

    def allocate_id(self) -> int:
        """Next primary key."""
        pk = self.next_id
        self.next_id += 1
        return pk

    def allocate_entry_id(self) -> int:
        """Next entry-row primary key (unique per form, like Kingdee's entry ids)."""
        eid = self.next_entry_id
        self.next_entry_id += 1
        return eid

    def allocate_number(self) -> str:
        """Next free auto number, e.g. ``XSDD000042`` (coding rules vary per tenant)."""
        while True:
            self.number_seq += 1
            number = f"{self.form.number_prefix}{self.number_seq:0{self.form.number_width}d}"
            if number.casefold() not in self.by_number:
                return number


# ---------------------------------------------------------------------------------------------
# Query columns

Row = tuple[dict[str, Any], dict[str, Any] | None]

_FILTER_KIND: dict[str, flt.FieldKind] = {
    "text": "text", "status": "text", "datetime": "datetime", "decimal": "decimal", "int": "int",
    "pk": "int", "ref": "int", "bool": "bool",
}


@dataclass(frozen=True)
class Column:
    """A resolved field key: how to read it from a row, its type and its entry entity."""

    key: str
    getter: Callable[[Row], Any]
    kind: flt.FieldKind
    entity: str | None


class UnknownFieldError(Exception):
    """A field key that the form's metadata does not have."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


# ---------------------------------------------------------------------------------------------
# The data centre

@dataclass
class SaveOptions:
    """Options of a Save/BatchSave ``data`` object that the sandbox honours."""

    need_update_fields: frozenset[str] = frozenset()
    is_delete_entry: bool = True
    auto_submit_and_audit: bool = False
    need_return_fields: tuple[str, ...] = ()
    verify_base_data: bool = False
    draft: bool = False


class KingdeeState:
    """One emulated data centre: tables, a clock, and the rules of every operation.

    Every public method takes the state lock: the ASGI app serves from one event loop, but
    tests read the state from their own thread.
    """

    def __init__(self, *, today: dt.date | None = None) -> None:
        real_now = dt.datetime.now(SHANGHAI).replace(tzinfo=None)
        self.today = today or real_now.date()
        # The sandbox lives on `today`: its clock is real time shifted by whole days, so seeded
        # data (all before today) is always older than anything written at run time.
        self._clock_offset = dt.timedelta(days=(self.today - real_now.date()).days)
        self._last_stamp = dt.datetime.min
        self.lock = threading.RLock()
        self.tables: dict[str, Table] = {key: Table(form) for key, form in FORMS.items()}
        self.version = 0  # bumped by every change; invalidates the sorted indexes
        self._indexes: dict[tuple[str, str], tuple[int, list[tuple[tuple[bool, Any], int]]]] = {}

    # -- clock -----------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """Server local time (naive, as Kingdee reports it), strictly increasing per call."""
        with self.lock:
            stamp = dt.datetime.now(SHANGHAI).replace(tzinfo=None) + self._clock_offset
            stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
            if stamp <= self._last_stamp:
                stamp = self._last_stamp + dt.timedelta(milliseconds=1)
            self._last_stamp = stamp
            return stamp

    # -- lookup helpers --------------------------------------------------------------------

    def table(self, form_id: str) -> Table:
        """The table of a form; BusinessError for a form the sandbox does not model."""
        table = self.tables.get(form_id.lower())
        if table is None:
            raise BusinessError([KdError(f"业务对象“{form_id}”不存在")])
        return table

    def doc_number(self, form_id: str, pk: int | None) -> str | None:
        """Number of a referenced document (used for ``.FNumber`` keys and snapshots)."""
        if pk is None:
            return None
        table = self.tables[form_id.lower()]
        doc = table.docs.get(pk)
        return None if doc is None else doc.get(table.form.number_key)

    # -- queries ---------------------------------------------------------------------------

    def _resolve(self, form: FormDef, key: str) -> Column:
        base, _, attr = key.strip().partition(".")
        fdef = form.field(base)
        if fdef is None and "_" in base:
            for entity_def in form.entities:
                prefix = entity_def.key.lower() + "_"
                if base.lower().startswith(prefix):
                    candidate = form.field(base[len(prefix):])
                    if candidate is not None and candidate.entity == entity_def.key:
                        fdef = candidate
                    break
        if fdef is None:
            raise UnknownFieldError(key.strip())
        entity = fdef.entity if fdef.entity and form.entity(fdef.entity) else None
        name = fdef.key

        def read(row: Row) -> Any:
            source = row[1] if entity else row[0]
            return None if source is None else source.get(name)

        if not attr:
            return Column(key.strip(), read, _FILTER_KIND[fdef.type], entity)
        if fdef.type != "ref" or fdef.ref_form is None or "." in attr:
            raise UnknownFieldError(key.strip())
        target_form = FORMS[fdef.ref_form.lower()]
        target_field = target_form.field(attr)
        if target_field is None:
            raise UnknownFieldError(key.strip())
        target_docs = self.tables[fdef.ref_form.lower()].docs
        target_name = target_field.key
        target_type = target_field.type

        def read_ref(row: Row) -> Any:
            ref_id = read(row)
            if ref_id is None:
                return None
            target = target_docs.get(ref_id)
            return None if target is None else target.get(target_name)

        if target_type == "ref":
            # One level only (FCustId.FSELLER would need FCustId.FSELLER.FNumber): give the id.
            return Column(key.strip(), read_ref, "int", entity)
        return Column(key.strip(), read_ref, _FILTER_KIND[target_type], entity)

    def _candidates(self, table: Table, node: flt.Node | None) -> Iterable[dict[str, Any]]:
        """Use the pk / number index when the filter pins them at the top level (a tiny planner)."""
        items: tuple[flt.Node, ...] = ()
        if isinstance(node, flt.And):
            items = node.items
        elif node is not None:
            items = (node,)
        form = table.form
        for item in items:
            values: tuple[flt.Literal_, ...]
            if isinstance(item, flt.Compare) and item.op == "=":
                values = (item.value,)
            elif isinstance(item, flt.InList) and not item.negated:
                values = item.values
            else:
                continue
            name = item.field.lower()
            if name == form.pk.lower():
                ids: set[int] = set()
                for v in values:
                    try:
                        ids.add(int(Decimal(str(v))))
                    except (InvalidOperation, ValueError):
                        continue
                return [table.docs[i] for i in sorted(ids) if i in table.docs]
            if name == form.number_key.lower():
                found = (table.find_number(str(v)) for v in values)
                docs = [d for d in found if d is not None]
                return sorted(docs, key=lambda d: d[form.pk])
        return table.docs.values()

    def _index_scan(
        self, table: Table, node: flt.Node | None, order: list[tuple[Column, bool]], entity: str | None,
    ) -> Iterator[dict[str, Any]] | None:
        """Documents in the requested order from a sorted index, or None when no index fits.

        Fits: ``ORDER BY c [, pk [, entry pk]]`` ascending, ``c`` a non-text header field (the
        incremental streams' ``FModifyDate ASC, FID ASC``). The scan starts at the lower bound
        on ``c`` that the filter implies, so keyset pages cost about one page of work; this is
        what an index range scan does for the real server's SQL.
        """
        if not order or any(desc for _, desc in order):
            return None
        first = order[0][0]
        form = table.form
        fdef = form.field(first.key)
        if first.entity is not None or fdef is None or fdef.entity in {e.key for e in form.entities} \
                or fdef.type not in ("datetime", "int", "decimal", "pk") or "." in first.key:
            return None
        rest = [c.key.lower() for c, _ in order[1:]]
        allowed = [form.pk.lower()]
        if entity is not None:
            entity_def = form.entity(entity)
            if entity_def is not None:
                allowed += [entity_def.pk.lower(), f"{entity_def.key}_{entity_def.pk}".lower()]
        if rest and (rest[0] != form.pk.lower() or any(k not in allowed for k in rest[1:])):
            return None
        index = self._sorted_index(table, fdef.key)
        position = 0
        bound = _lower_bound(node, first.key.lower())
        if bound is not None:
            try:
                value = flt.coerce_literal(bound, first.kind)
            except flt.FilterTypeError:
                return None  # let the normal path report the conversion error
            position = bisect.bisect_left(index, (True, value), key=lambda entry: entry[0])
        docs = table.docs
        return (docs[pk] for _, pk in index[position:])

    def _sorted_index(self, table: Table, key: str) -> list[tuple[tuple[bool, Any], int]]:
        """(sort key, pk) sorted, NULLs first; cached until the next change of state."""
        cache_key = (table.form.form_id, key)
        cached = self._indexes.get(cache_key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        index = sorted(
            (((value is not None, value if value is not None else 0), pk)
             for pk, doc in table.docs.items() for value in (doc.get(key),)),
        )
        self._indexes[cache_key] = (self.version, index)
        return index

    def query(self, data: Mapping[str, Any], *, as_dicts: bool) -> list[Any]:
        """ExecuteBillQuery (``as_dicts=False``) or BillQuery; errors come back wrapped."""
        with self.lock:
            try:
                return self._query(data, as_dicts=as_dicts)
            except BusinessError as exc:
                return wrapped_query_error(exc.errors, exc.msg_code)

    def _query(self, data: Mapping[str, Any], *, as_dicts: bool) -> list[Any]:
        params = _lower_keys(data)
        form_id = str(params.get("formid") or "")
        if not form_id:
            raise BusinessError([KdError("FormId不能为空")])
        table = self.table(form_id)
        form = table.form
        raw_keys = params.get("fieldkeys") or ""
        keys = [k.strip() for k in (raw_keys if isinstance(raw_keys, list) else str(raw_keys).split(","))]
        keys = [k for k in keys if k]
        if not keys:
            raise BusinessError([KdError("FieldKeys不能为空")])
        filter_text = params.get("filterstring") or ""
        if not isinstance(filter_text, str):
            # Newer builds accept a JSON condition array [UNC]; this sandbox models the text form.
            raise BusinessError([KdError("FilterString 仅支持字符串条件（沙箱）")])
        try:
            node = flt.parse_filter(filter_text)
            order = flt.parse_order(str(params.get("orderstring") or ""))
        except flt.FilterSyntaxError as exc:
            raise BusinessError([KdError(f"过滤条件语法错误：{exc}")]) from exc
        try:
            columns = [self._resolve(form, k) for k in keys]
            filter_columns = {k: self._resolve(form, k) for k in flt.referenced_fields(node)}
            order_columns = [(self._resolve(form, item.field), item.descending) for item in order]
        except UnknownFieldError as exc:
            raise BusinessError([KdError(f"元数据中标识为{exc.key}的字段不存在")]) from exc

        entities = {c.entity for c in columns} | {c.entity for c in filter_columns.values()}
        entities |= {c.entity for c, _ in order_columns}
        entities.discard(None)
        if len(entities) > 1:
            raise BusinessError([KdError("不支持在一次查询中同时查询多个单据体")])
        entity = next(iter(entities), None)

        def resolve(key: str) -> tuple[flt.Getter, flt.FieldKind]:
            column = filter_columns[key]
            return column.getter, column.kind

        try:
            predicate = flt.compile_filter(node, resolve)
        except flt.FilterTypeError as exc:
            raise BusinessError([KdError(str(exc))]) from exc

        top = _int_param(params, "toprowcount")
        start = max(_int_param(params, "startrow"), 0)
        limit = _int_param(params, "limit")
        wanted = start + min(limit, MAX_LIMIT) if limit > 0 else None
        if top > 0:
            wanted = top if wanted is None else min(wanted, top)

        def expand(docs: Iterable[dict[str, Any]], enough: int | None) -> list[Row]:
            out: list[Row] = []
            for doc in docs:
                if entity is None:
                    row: Row = (doc, None)
                    if predicate(row):
                        out.append(row)
                else:
                    for line in doc[ENTRIES].get(entity) or [None]:
                        row = (doc, line)
                        if predicate(row):
                            out.append(row)
                if enough is not None and len(out) >= enough:
                    break
            return out

        scan = self._index_scan(table, node, order_columns, entity)
        if scan is not None:
            # Index order already is the requested order: stop as soon as the page is full.
            rows = expand(scan, wanted)
        else:
            rows = expand(self._candidates(table, node), None)
            for column, descending in reversed(order_columns):
                rows.sort(key=_sort_key(column), reverse=descending)
        # Without OrderString the sandbox returns rows by primary key, entry id (the real order
        # is whatever SQL Server picks: callers that page must send an OrderString).

        if top > 0:
            rows = rows[:top]
        rows = rows[start:start + min(limit, MAX_LIMIT)] if limit > 0 else rows[start:]
        if as_dicts:
            return [{c.key: json_value(c.getter(r)) for c in columns} for r in rows]
        return [[json_value(c.getter(r)) for c in columns] for r in rows]

    # -- save ------------------------------------------------------------------------------

    @staticmethod
    def parse_save_options(data: Mapping[str, Any], *, draft: bool = False) -> SaveOptions:
        """Read the option keys of a Save ``data`` object (case-insensitive)."""
        params = _lower_keys(data)
        need = params.get("needupdatefields") or []
        if isinstance(need, str):
            need = [k for k in need.split(",") if k.strip()]
        returns = params.get("needreturnfields") or []
        if isinstance(returns, str):
            returns = [k for k in returns.split(",") if k.strip()]
        return SaveOptions(
            need_update_fields=frozenset(str(k).strip().lower() for k in need),
            is_delete_entry=_truthy(params.get("isdeleteentry"), default=True),
            auto_submit_and_audit=_truthy(params.get("isautosubmitandaudit"), default=False),
            need_return_fields=tuple(str(k).strip() for k in returns),
            verify_base_data=_truthy(params.get("isverifybasedatafield"), default=False),
            draft=draft,
        )

    def save(self, form_id: str, data: Mapping[str, Any], *, draft: bool = False) -> dict[str, Any]:
        """Save (or Draft) one model; returns the full ``{"Result": …}`` reply."""
        with self.lock:
            try:
                table = self.table(form_id)
                params = _lower_keys(data)
                model = params.get("model")
                if not isinstance(model, Mapping):
                    raise BusinessError([KdError("Model不能为空，且必须是对象")])
                options = self.parse_save_options(data, draft=draft)
                doc = self._save_one(table, model, options, dindex=0)
            except BusinessError as exc:
                return {"Result": {
                    "ResponseStatus": response_status(errors=exc.errors, msg_code=exc.msg_code),
                    "Id": "", "Number": "", "NeedReturnData": [{}],
                }}
            number = doc.get(table.form.number_key)
            pk = doc[table.form.pk]
            return {"Result": {
                "ResponseStatus": response_status(successes=[{"Id": pk, "Number": number, "DIndex": 0}]),
                "Id": pk, "Number": number,
                "NeedReturnData": [self._return_data(table, doc, options)],
            }}

    def batch_save(self, form_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """BatchSave: each model on its own (not atomic); results and errors carry DIndex."""
        with self.lock:
            try:
                table = self.table(form_id)
                params = _lower_keys(data)
                models = params.get("model")
                if not isinstance(models, list):
                    raise BusinessError([KdError("BatchSave 的 Model 必须是数组")])
                options = self.parse_save_options(data)
            except BusinessError as exc:
                return {"Result": {"ResponseStatus": response_status(errors=exc.errors, msg_code=exc.msg_code),
                                   "NeedReturnData": []}}
            errors: list[KdError] = []
            successes: list[dict[str, Any]] = []
            returned: list[dict[str, Any]] = []
            msg_code = 0
            for index, model in enumerate(models):
                try:
                    if not isinstance(model, Mapping):
                        raise BusinessError([KdError("Model不能为空，且必须是对象", dindex=index)])
                    doc = self._save_one(table, model, options, dindex=index)
                except BusinessError as exc:
                    errors.extend(exc.errors)
                    msg_code = msg_code or exc.msg_code
                    continue
                successes.append({"Id": doc[table.form.pk], "Number": doc.get(table.form.number_key),
                                  "DIndex": index})
                returned.append(self._return_data(table, doc, options))
            return {"Result": {
                "ResponseStatus": response_status(errors=errors, successes=successes, msg_code=msg_code),
                "NeedReturnData": returned,
            }}

    def _return_data(self, table: Table, doc: dict[str, Any], options: SaveOptions) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in options.need_return_fields:
            try:
                column = self._resolve(table.form, key)
            except UnknownFieldError:
                continue
            if column.entity is None:
                out[key] = json_value(column.getter((doc, None)))
        return out

    def _save_one(self, table: Table, model: Mapping[str, Any], options: SaveOptions, *, dindex: int) -> dict[str, Any]:
        form = table.form
        lowered = _lower_keys(model)
        errors: list[KdError] = []
        msg_code = 0
        raw_pk = lowered.get(form.pk.lower())
        try:
            pk = int(Decimal(str(raw_pk))) if raw_pk not in (None, "", 0, "0") else 0
        except (InvalidOperation, ValueError):
            raise BusinessError([KdError(f"主键 {form.pk} 的值无效", form.pk, dindex)]) from None
        existing = table.docs.get(pk) if pk else None
        if pk and existing is None:
            raise BusinessError([KdError(f"{form.label}内码 {pk} 不存在或已被删除", form.pk, dindex)])
        if existing is not None and existing.get("FDocumentStatus") in ("B", "C"):
            state_word = "审核中" if existing["FDocumentStatus"] == "B" else "已审核"
            raise BusinessError([KdError(
                f"{form.label}“{existing.get(form.number_key)}”{state_word}，不允许修改", None, dindex)])
        partial = bool(options.need_update_fields) and existing is not None
        need = options.need_update_fields
        doc: dict[str, Any] = copy.deepcopy(existing) if existing is not None else {ENTRIES: {}}

        def provided(fdef: FieldDef) -> tuple[bool, Any]:
            if fdef.entity in form.subheaders:
                sub = lowered.get(fdef.entity.lower())
                if isinstance(sub, Mapping):
                    sub_lowered = _lower_keys(sub)
                    if fdef.key.lower() in sub_lowered:
                        return True, sub_lowered[fdef.key.lower()]
            if fdef.key.lower() in lowered:
                return True, lowered[fdef.key.lower()]
            return False, None

        for fdef in form.header_fields():
            if fdef.readonly or fdef.type == "pk":
                continue
            if partial and fdef.key.lower() not in need:
                continue
            present, raw = provided(fdef)
            if not present:
                # Without NeedUpDateFields a Save replaces the whole model: absent fields are
                # cleared (community reports) — except the number, which identifies the record.
                if existing is None or fdef.key != form.number_key:
                    doc[fdef.key] = self._default(form, fdef, doc)
                continue
            try:
                doc[fdef.key] = self._coerce(fdef, raw, options)
            except BusinessError as exc:
                errors.extend(KdError(e.message, e.field_name, dindex) for e in exc.errors)
                msg_code = msg_code or exc.msg_code

        for entity in form.entities:
            e_key = entity.key
            entity_touched = (not partial) or e_key.lower() in need or any(
                f.key.lower() in need for f in form.entry_fields(e_key))
            rows_in = lowered.get(e_key.lower())
            if rows_in is None:
                if existing is None or (entity_touched and not partial and options.is_delete_entry):
                    doc[ENTRIES][e_key] = []
                continue
            if not isinstance(rows_in, list):
                errors.append(KdError(f"单据体“{entity.label}”必须是数组", e_key, dindex))
                continue
            if not entity_touched:
                continue
            old_rows = {r[entity.pk]: r for r in doc[ENTRIES].get(e_key, [])}
            new_rows: list[dict[str, Any]] = []
            for line_no, row_in in enumerate(rows_in, start=1):
                if not isinstance(row_in, Mapping):
                    errors.append(KdError(f"第{line_no}行分录格式错误", e_key, dindex))
                    continue
                row_lowered = _lower_keys(row_in)
                raw_eid = row_lowered.get(entity.pk.lower())
                try:
                    eid = int(Decimal(str(raw_eid))) if raw_eid not in (None, "", 0, "0") else 0
                except (InvalidOperation, ValueError):
                    eid = 0
                base_row = old_rows.pop(eid, None) if eid else None
                row: dict[str, Any] = dict(base_row) if base_row else {entity.pk: table.allocate_entry_id()}
                for fdef in form.entry_fields(e_key):
                    if fdef.readonly:
                        continue
                    if partial and base_row is not None and e_key.lower() not in need and fdef.key.lower() not in need:
                        continue
                    if fdef.key.lower() in row_lowered:
                        try:
                            row[fdef.key] = self._coerce(fdef, row_lowered[fdef.key.lower()], options)
                        except BusinessError as exc:
                            errors.extend(KdError(f"第{line_no}行：{e.message}", e.field_name, dindex)
                                          for e in exc.errors)
                            msg_code = msg_code or exc.msg_code
                    elif base_row is None:
                        row[fdef.key] = self._default(form, fdef, row)
                new_rows.append(row)
            if not options.is_delete_entry:
                # IsDeleteEntry=false keeps the lines the model does not mention.
                new_rows = list(old_rows.values()) + new_rows
            new_rows.sort(key=operator.itemgetter(entity.pk))
            doc[ENTRIES][e_key] = new_rows

        # Number: given, kept, or allocated; unique per form.
        number = doc.get(form.number_key)
        if isinstance(number, str):
            number = number.strip() or None
        if number:
            clash = table.find_number(number)
            if clash is not None and clash[form.pk] != pk:
                errors.append(KdError(
                    f"{form.label}编号“{number}”已经存在，编号不能重复", form.number_key, dindex))
        doc[form.number_key] = number

        if not options.draft:
            already = {e.field_name for e in errors}
            errors.extend(e for e in self._validate_required(form, doc, dindex) if e.field_name not in already)
        if errors:
            raise BusinessError(errors, msg_code)

        self._compute(form, doc, dindex)

        now = self.now()
        if existing is None:
            doc[form.pk] = table.allocate_id()
            doc["FCreateDate"] = now
        if not doc.get(form.number_key):
            doc[form.number_key] = table.allocate_number()
        status = existing.get("FDocumentStatus") if existing is not None else None
        if options.draft:
            status = "Z" if status in (None, "Z") else status
        elif status in (None, "Z"):
            status = "A"
        if options.auto_submit_and_audit and not options.draft:
            status = "C"
        doc["FDocumentStatus"] = status
        doc["FModifyDate"] = now
        if existing is not None:
            table.remove(pk)
        table.insert(doc)
        self.version += 1
        return doc

    def _default(self, form: FormDef, fdef: FieldDef, doc: Mapping[str, Any]) -> Any:
        """Server-side default of a field left out of a Save model."""
        key = fdef.key
        if key in ("FForbidStatus", "FCloseStatus", "FCancelStatus"):
            return "A"
        if key == "FIsIncludedTax":
            return True
        if key in ("FCONTACTUNITTYPE", "FPAYUNITTYPE"):
            return "BD_Customer"
        if key == "FWRITTENOFFAMOUNTFOR":
            return Decimal("0")
        if key == "FBillTypeID":
            default_type = {"sal_saleorder": "XSDD01_SYS", "ar_receivable": "YSD01_SYS",
                            "ar_receivebill": "SKDLX01_SYS"}.get(form.form_id.lower())
            return self._id_of("BOS_BillType", default_type) if default_type else None
        if key == "FExchangeTypeId":
            return self._id_of("BD_RateType", "HLTX01_SYS")
        if key == "FUnitID" and doc.get("FMaterialId") is not None:
            material = self.tables["bd_material"].docs.get(doc["FMaterialId"])
            return None if material is None else material.get("FBaseUnitId")
        if key == "FEntryTaxRate":
            return DEFAULT_TAX_RATE
        return None

    def _id_of(self, form_id: str, number: str) -> int | None:
        doc = self.tables[form_id.lower()].find_number(number)
        return None if doc is None else doc[self.tables[form_id.lower()].form.pk]

    def _coerce(self, fdef: FieldDef, raw: Any, options: SaveOptions) -> Any:
        """Convert a Save model value to the stored type; BusinessError names the field."""
        if raw is None:
            return None
        kind = fdef.type
        try:
            if kind in ("text", "status"):
                if isinstance(raw, Mapping | list):
                    raise ValueError("not text")
                return str(raw)
            if kind == "datetime":
                if raw == "":
                    return None
                return flt.parse_datetime_literal(str(raw))
            if kind == "decimal":
                if raw == "":
                    return None
                if isinstance(raw, bool):
                    raise ValueError("bool")
                return Decimal(str(raw))
            if kind == "int":
                return int(Decimal(str(raw)))
            if kind == "bool":
                if isinstance(raw, bool):
                    return raw
                return str(raw).strip().lower() in ("1", "true")
            if kind == "ref":
                return self._resolve_reference(fdef, raw, verify=options.verify_base_data)
        except flt.FilterTypeError:
            raise BusinessError([KdError(f"“{fdef.label}”的日期格式不正确：{raw}", fdef.key)]) from None
        except (InvalidOperation, ValueError, TypeError):
            raise BusinessError([KdError(f"“{fdef.label}”的值“{raw}”格式不正确", fdef.key)]) from None
        return raw

    def _resolve_reference(self, fdef: FieldDef, raw: Any, *, verify: bool) -> int | None:
        """``{"FNumber": "C001"}`` (or ``FName``, or a bare id) → referenced pk.

        The referent must exist. With ``IsVerifyBaseDataField`` true, base data must also be
        audited and enabled (the option's name is [COMM]; that it defaults to false and means
        exactly this is a guess; the message texts are guesses too).
        """
        assert fdef.ref_form is not None
        target = self.tables[fdef.ref_form.lower()]
        doc: dict[str, Any] | None = None
        shown: Any = raw
        if isinstance(raw, Mapping):
            lowered = _lower_keys(raw)
            if "fnumber" in lowered:
                shown = lowered["fnumber"]
                if shown in (None, ""):
                    return None
                doc = target.find_number(str(shown))
            elif "fname" in lowered:
                shown = lowered["fname"]
                if shown in (None, ""):
                    return None
                name = str(shown).casefold()
                doc = next((d for d in target.docs.values() if str(d.get("FName", "")).casefold() == name), None)
            elif "fid" in lowered or target.form.pk.lower() in lowered:
                shown = lowered.get("fid", lowered.get(target.form.pk.lower()))
                if shown in (None, "", 0, "0"):
                    return None
                doc = target.docs.get(int(Decimal(str(shown))))
            else:
                return None
        elif isinstance(raw, int | Decimal) and not isinstance(raw, bool):
            if raw == 0:
                return None
            doc = target.docs.get(int(raw))
        elif isinstance(raw, str):
            if not raw:
                return None
            doc = target.find_number(raw)
        if doc is None:
            raise BusinessError(
                [KdError(f"“{fdef.label}”字段的值“{shown}”在{target.form.label}中不存在", fdef.key)],
                MSGCODE_REFERENCE,
            )
        if verify and target.form.is_base_data and (
                doc.get("FDocumentStatus") != "C" or doc.get("FForbidStatus") == "B"):
            raise BusinessError(
                [KdError(f"“{fdef.label}”引用的{target.form.label}“{shown}”未审核或已禁用", fdef.key)],
                MSGCODE_REFERENCE,
            )
        return int(doc[target.form.pk])

    def _validate_required(self, form: FormDef, doc: Mapping[str, Any], dindex: int) -> list[KdError]:
        errors: list[KdError] = []
        for fdef in form.header_fields():
            if fdef.required and doc.get(fdef.key) in (None, ""):
                errors.append(KdError(f"“{fdef.label}”是必填项", fdef.key, dindex))
        for entity in form.entities:
            rows = doc[ENTRIES].get(entity.key, [])
            if form.form_id == "SAL_SaleOrder" and not rows:
                errors.append(KdError(f"单据体“{entity.label}”至少需要录入一行", entity.key, dindex))
            for line_no, row in enumerate(rows, start=1):
                for fdef in form.entry_fields(entity.key):
                    if fdef.required and row.get(fdef.key) in (None, ""):
                        errors.append(KdError(f"第{line_no}行：“{fdef.label}”是必填项", fdef.key, dindex))
        return errors

    def _compute(self, form: FormDef, doc: dict[str, Any], dindex: int) -> None:
        """Amounts the server derives (callers' values for readonly fields are ignored)."""
        if form.form_id == "SAL_SaleOrder":
            included = doc.get("FIsIncludedTax", True) is not False
            total = net = Decimal("0")
            errors: list[KdError] = []
            for line_no, row in enumerate(doc[ENTRIES].get("FSaleOrderEntry", []), start=1):
                qty = row.get("FQty") or Decimal("0")
                if qty <= 0:
                    errors.append(KdError(f"第{line_no}行：“销售数量”必须大于0", "FQty", dindex))
                    continue
                rate = row.get("FEntryTaxRate")
                rate = DEFAULT_TAX_RATE if rate is None else rate
                factor = 1 + rate / 100
                tax_price, price = row.get("FTaxPrice"), row.get("FPrice")
                if tax_price is not None and (included or price is None):
                    price = (tax_price / factor).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)
                elif price is not None:
                    tax_price = (price * factor).quantize(PRICE_PLACES, rounding=ROUND_HALF_UP)
                else:
                    tax_price = price = Decimal("0")
                row.update(FTaxPrice=tax_price, FPrice=price, FEntryTaxRate=rate,
                           FAllAmount=_q2(qty * tax_price), FAmount=_q2(qty * price))
                total += row["FAllAmount"]
                net += row["FAmount"]
            if errors:
                raise BusinessError(errors)
            doc.update(FBillAllAmount=total, FBillAmount=net, FBillTaxAmount=total - net)
        elif form.form_id == "AR_receivable":
            amount = doc.get("FALLAMOUNTFOR") or Decimal("0")
            written = doc.get("FWRITTENOFFAMOUNTFOR") or Decimal("0")
            if written > amount:
                raise BusinessError([KdError("已核销金额不能大于价税合计", "FWRITTENOFFAMOUNTFOR", dindex)])
            doc["FWRITTENOFFAMOUNTFOR"] = written
            doc["FNOTWRITTENOFFAMOUNTFOR"] = amount - written
            doc["FWRITTENOFFSTATUS"] = "A" if written == 0 else ("C" if written == amount else "B")
        elif form.form_id == "AR_RECEIVEBILL" and doc.get("FRECEIVEAMOUNTFOR") is None:
            doc["FRECEIVEAMOUNTFOR"] = doc.get("FREALRECAMOUNTFOR")

    # -- status operations -----------------------------------------------------------------

    def status_operation(self, operation: str, form_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Submit / Audit / UnAudit / Delete over ``Numbers`` and/or ``Ids`` (a comma string)."""
        with self.lock:
            try:
                table = self.table(form_id)
            except BusinessError as exc:
                return {"Result": {"ResponseStatus": response_status(errors=exc.errors)}}
            params = _lower_keys(data)
            numbers = params.get("numbers") or []
            if isinstance(numbers, str):
                numbers = [n for n in numbers.split(",") if n.strip()]
            raw_ids = params.get("ids") or ""
            ids = [i for i in (raw_ids.split(",") if isinstance(raw_ids, str) else raw_ids) if str(i).strip()]
            targets: list[tuple[str, Any]] = [("number", n) for n in numbers] + [("id", i) for i in ids]
            if not targets:
                return {"Result": {"ResponseStatus": response_status(
                    errors=[KdError("请指定需要操作的单据编号(Numbers)或内码(Ids)")])}}
            errors: list[KdError] = []
            successes: list[dict[str, Any]] = []
            for index, (kind, value) in enumerate(targets):
                if kind == "number":
                    doc = table.find_number(str(value))
                else:
                    try:
                        doc = table.docs.get(int(str(value).strip()))
                    except ValueError:
                        doc = None
                if doc is None:
                    errors.append(KdError(f"{table.form.label}“{value}”不存在", None, index))
                    continue
                try:
                    self._transition(operation, table, doc, index)
                except BusinessError as exc:
                    errors.extend(exc.errors)
                    continue
                successes.append({"Id": doc[table.form.pk], "Number": doc.get(table.form.number_key),
                                  "DIndex": index})
            return {"Result": {"ResponseStatus": response_status(errors=errors, successes=successes)}}

    _TRANSITIONS: ClassVar[dict[str, tuple[tuple[str, ...], str | None, str]]] = {
        # operation: (allowed from, to (None = delete), verb for messages)
        "submit": (("A", "D"), "B", "提交"),
        "audit": (("B",), "C", "审核"),
        "unaudit": (("C",), "D", "反审核"),
        "delete": (("Z", "A", "D"), None, "删除"),
    }

    def _transition(self, operation: str, table: Table, doc: dict[str, Any], index: int) -> None:
        allowed, target, verb = self._TRANSITIONS[operation]
        status = doc.get("FDocumentStatus")
        number = doc.get(table.form.number_key)
        if status not in allowed:
            names = {"Z": "暂存", "A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核"}
            raise BusinessError([KdError(
                f"{table.form.label}“{number}”当前状态为“{names.get(str(status), status)}”，不允许{verb}",
                None, index)])
        if target is None:
            self._check_not_referenced(table, doc, index)
            table.remove(doc[table.form.pk])
        else:
            doc["FDocumentStatus"] = target
            doc["FModifyDate"] = self.now()
        self.version += 1

    def _check_not_referenced(self, table: Table, doc: dict[str, Any], index: int) -> None:
        """Base data used by any bill cannot be deleted (Kingdee keeps referential integrity)."""
        if not table.form.is_base_data:
            return
        pk = doc[table.form.pk]
        for other in self.tables.values():
            ref_fields = [f for f in other.form.fields if f.type == "ref" and f.ref_form == table.form.form_id]
            if not ref_fields:
                continue
            for other_doc in other.docs.values():
                for fdef in ref_fields:
                    entity = fdef.entity if fdef.entity and other.form.entity(fdef.entity) else None
                    rows = other_doc[ENTRIES].get(entity, []) if entity else [other_doc]
                    if any(row.get(fdef.key) == pk for row in rows):
                        raise BusinessError([KdError(
                            f"{table.form.label}“{doc.get(table.form.number_key)}”已被"
                            f"{other.form.label}“{other_doc.get(other.form.number_key)}”引用，不允许删除",
                            None, index)])

    # -- view ------------------------------------------------------------------------------

    def view(self, form_id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """View by ``Number`` or ``Id``: the object at ``Result.Result`` with property-style names.

        Property names are the field keys without the leading ``F``; references are nested
        objects ``{"Id", "Number", "Name": [{"Key": 2052, "Value": …}]}`` with a sibling
        ``<Name>_Id`` (naming details [UNC] in the reference). ``ResponseStatus`` is null on
        success (community samples; guess).
        """
        with self.lock:
            try:
                table = self.table(form_id)
                params = _lower_keys(data)
                number = str(params.get("number") or "").strip()
                raw_id = str(params.get("id") or "").strip()
                doc = None
                if number:
                    doc = table.find_number(number)
                elif raw_id:
                    try:
                        doc = table.docs.get(int(raw_id))
                    except ValueError:
                        doc = None
                if doc is None:
                    raise BusinessError([KdError(f"{table.form.label}“{number or raw_id}”不存在或者没有权限")])
            except BusinessError as exc:
                return {"Result": {"ResponseStatus": response_status(errors=exc.errors), "Result": None}}
            return {"Result": {"ResponseStatus": None, "Result": self._view_object(table.form, doc)}}

    def _view_object(self, form: FormDef, doc: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"Id": doc[form.pk]}
        subs: dict[str, dict[str, Any]] = {sub: {} for sub in form.subheaders}
        for fdef in form.header_fields():
            if fdef.type == "pk":
                continue
            target = subs.get(fdef.entity or "", out)
            self._view_field(target, fdef, doc.get(fdef.key))
        if form.number_key == "FBillNo":
            out["BillNo"] = doc.get("FBillNo")
        for sub, values in subs.items():
            out[_prop(sub)] = [values]
        for entity in form.entities:
            lines = []
            for row in doc[ENTRIES].get(entity.key, []):
                line: dict[str, Any] = {"Id": row[entity.pk]}
                for fdef in form.entry_fields(entity.key):
                    self._view_field(line, fdef, row.get(fdef.key))
                lines.append(line)
            out[_prop(entity.key)] = lines
        return out

    def _view_field(self, target: dict[str, Any], fdef: FieldDef, value: Any) -> None:
        name = _prop(fdef.key)
        if fdef.type == "ref" and fdef.ref_form:
            table = self.tables[fdef.ref_form.lower()]
            ref = table.docs.get(value) if value is not None else None
            target[f"{name}_Id"] = value or 0
            target[name] = None if ref is None else {
                "Id": value,
                "Number": ref.get(table.form.number_key),
                "Name": [{"Key": 2052, "Value": ref.get("FName")}],
            }
        elif fdef.key == "FName":
            target[name] = [{"Key": 2052, "Value": value}]
        else:
            target[name] = json_value(value)

    # -- inspection (admin endpoints, tests) -----------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts per form and the sandbox date, for ``GET /__sandbox__/state``."""
        with self.lock:
            return {
                "today": self.today.isoformat(),
                "now": format_datetime(self.now()),
                "version": self.version,
                "counts": {t.form.form_id: len(t.docs) for t in self.tables.values()},
            }

    def snapshot(self, form_id: str, number: str) -> dict[str, Any] | None:
        """A stored document with references as numbers, for assertions; None when absent."""
        with self.lock:
            table = self.tables.get(form_id.lower())
            if table is None:
                return None
            doc = table.find_number(number)
            if doc is None:
                return None
            return self._snapshot_doc(table.form, doc)

    def _snapshot_doc(self, form: FormDef, doc: Mapping[str, Any]) -> dict[str, Any]:
        def plain(fdef: FieldDef, value: Any) -> Any:
            if fdef.type == "ref" and fdef.ref_form:
                return self.doc_number(fdef.ref_form, value)
            return json_value(value)

        out = {f.key: plain(f, doc.get(f.key)) for f in form.header_fields()}
        for entity in form.entities:
            out[entity.key] = [
                {entity.pk: row[entity.pk], **{f.key: plain(f, row.get(f.key)) for f in form.entry_fields(entity.key)}}
                for row in doc[ENTRIES].get(entity.key, [])
            ]
        return out

    def count(self, form_id: str, predicate: Callable[[dict[str, Any]], bool] | None = None) -> int:
        """Number of stored documents of a form (optionally matching a predicate)."""
        with self.lock:
            docs = self.tables[form_id.lower()].docs.values()
            return sum(1 for d in docs if predicate is None or predicate(d))


def _lower_bound(node: flt.Node | None, field_lower: str) -> flt.Literal_ | None:
    """A value the filter implies ``field >= value`` for (None when it implies no bound).

    ``>`` is treated like ``>=``: the bound only positions the scan; the filter still decides.
    """
    if node is None:
        return None
    if isinstance(node, flt.Compare):
        if node.field.lower() == field_lower and node.op in (">", ">=", "="):
            return node.value
        return None
    if isinstance(node, flt.And):
        bounds = [b for b in (_lower_bound(item, field_lower) for item in node.items) if b is not None]
        return max(bounds, key=_bound_order) if bounds else None
    if isinstance(node, flt.Or):
        found = []
        for item in node.items:
            bound = _lower_bound(item, field_lower)
            if bound is None:
                return None  # one branch without a bound lets any value through
            found.append(bound)
        return min(found, key=_bound_order) if found else None
    return None


def _bound_order(value: flt.Literal_) -> Any:
    """Order literals of one field: numbers numerically, date strings by their parsed value."""
    if isinstance(value, Decimal):
        return (0, value, dt.datetime.min)
    try:
        return (1, Decimal(0), flt.parse_datetime_literal(value))
    except flt.FilterTypeError:
        return (2, Decimal(0), dt.datetime.min)


def _sort_key(column: Column) -> Callable[[Row], tuple[bool, Any]]:
    """Sort key for one OrderString column: NULL first (SQL Server), text case-insensitive."""
    getter = column.getter
    if column.kind == "text":
        def text_key(row: Row) -> tuple[bool, Any]:
            value = getter(row)
            return (False, "") if value is None else (True, str(value).casefold())
        return text_key

    def key(row: Row) -> tuple[bool, Any]:
        value = getter(row)
        return (False, 0) if value is None else (True, value)
    return key


def _int_param(params: Mapping[str, Any], name: str) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return 0
    try:
        return int(Decimal(str(raw)))
    except (InvalidOperation, ValueError):
        raise BusinessError([KdError(f"参数 {name} 的值“{raw}”不是整数")]) from None


def _prop(key: str) -> str:
    """Property-style name of a field key: ``FCustId`` → ``CustId`` (View replies)."""
    return key[1:] if key.startswith("F") and len(key) > 1 else key


def _truthy(value: Any, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true")


__all__ = [
    "ENTRIES",
    "MSGCODE_SESSION",
    "MSG_SESSION_LOST",
    "SHANGHAI",
    "BusinessError",
    "KdError",
    "KingdeeState",
    "SaveOptions",
    "Table",
    "format_datetime",
    "json_value",
    "response_status",
    "session_lost_envelope",
    "wrapped_query_error",
]
