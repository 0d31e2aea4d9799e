"""Outbound effects on Kingdee: an approved CRM order becomes a ``SAL_SaleOrder``, exactly once.

K/3 Cloud has no idempotency key on Save (reference ``erp-apis.md`` §1.4), so exactly-once rests
on a deterministic bill number: the order's ``FBillNo`` is derived from the CRM order number
(``CRM-<order_number>``, :func:`~connectors.kingdee.mapping.crm_bill_number`). When an earlier
attempt's outcome is unknown the writer looks the number up once, first, and *adopts* what it
finds; a Save that still races an earlier one is refused by the server as a duplicate number,
which the writer also resolves by adopting.

**A multi-step write that resumes.** With ``submit_and_audit`` the order goes Save (status A)
→ Submit (B) → Audit (C), three calls that can each fail. An attempt that finds the order (its
one lookup) continues from the status found; each status the writer knows the ERP holds is
reported through ``attempt.progress`` before the next step, so when an attempt fails after the
Save the hub records the bill number and "in the ERP, not yet audited" (``hub.outbox.effects``,
``hub.rules.orders``) instead of a failure.

Why three calls and not one Save with ``IsAutoSubmitAndAudit`` (a third of the calls, measured
3.12 calls per order at 0 ms in ``benchmarks/outbound.py``): for bills K/3 Cloud runs the three
operations in one transaction, which community reports say often fails with "事务已中止"
(transaction aborted) or times out; Kingdee has hidden the option from the WebAPI docs and
advises against it for bills, not for base data (cnblogs.com/shanzhiming/p/18474122, a
practitioner's note, not Kingdee's own page [COMM]). So only new customers (base data) are saved
with it, and an order's steps stay separate, each with its own progress and error.

The customer is resolved in the ERP first (unified social credit code, then ERP number) and
created when missing, with a deterministic number (``crm_customer_number``) so that a lost
customer Save is found on the next attempt too. Resolved customers and salespeople are cached
by the writer (customers are not deleted under a running dispatcher; a stale entry would be
refused by the Save as an unknown reference, a permanent error a person sees).

The payload's ``salesperson`` is whatever the CRM knows (the hub sends the owner's name); it is
looked up in ``BD_Saler`` by number, then by name, and left off the order when the ERP does
not know that person — an unknown salesperson must not keep an approved order out of the ERP.
The result's ``detail`` says which salesperson was used (``salesperson_number``) or dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.kingdee.client import KingdeeBusinessError, KingdeeClient, quote_literal
from connectors.kingdee.mapping import (
    crm_bill_number,
    crm_customer_number,
    crm_customer_to_model,
    crm_order_to_sales_order_model,
)
from connectors.kit.orders import salesperson_outcome
from hub.contracts import Attempt, MappingError, WriteResult
from hub.errors import PermanentError

SALES_ORDER_FORM = "SAL_SaleOrder"
CUSTOMER_FORM = "BD_Customer"
ORDER_LOOKUP_KEYS = ("FID", "FBillNo", "FDocumentStatus", "FCustId.FNumber")
CUSTOMER_LOOKUP_KEYS = ("FCUSTID", "FNumber", "FDocumentStatus", "FForbidStatus")
DEFAULT_ORG_NUMBER = "100"  # number of the first organisation in a new K/3 Cloud data centre


class SalesOrderWriter:
    """Creates (and optionally submits and audits) the ERP sales order of an approved CRM order.

    ``org_number`` is the sales organisation's number (Kingdee's first organisation is
    ``100``). With ``submit_and_audit`` the order is taken A → B → C after saving; an order
    adopted from an earlier attempt is advanced from wherever that attempt stopped.
    ``audit_new_customers`` saves newly created customers with ``IsAutoSubmitAndAudit`` so
    that they are usable base data at once.
    """

    system = "kingdee"
    operation = "create_sales_order"

    def __init__(
        self, client: KingdeeClient, *, submit_and_audit: bool = False, org_number: str = DEFAULT_ORG_NUMBER,
        audit_new_customers: bool = True,
    ) -> None:
        self._client = client
        self._submit_and_audit = submit_and_audit
        self._org_number = org_number
        self._audit_new_customers = audit_new_customers
        self._salespeople: dict[str, str | None] = {}  # CRM name/number → ERP number (None: unknown)
        self._customers: dict[tuple[str, str], str] = {}  # (credit code, CRM number) → ERP number

    # -- lookup and effect ------------------------------------------------------------------

    def find_existing(self, key: str, payload: dict[str, Any]) -> WriteResult | None:
        """The ERP order of this CRM order if an earlier attempt *completed* it, else None
        (for checks and tools; :meth:`apply` does its own lookup when it must).

        With ``submit_and_audit``, an order an earlier attempt saved but did not get through
        Audit is not complete: None is returned.
        """
        bill_number = self._bill_number(payload)
        row = self._find_order(bill_number)
        if row is None:
            return None
        if self._submit_and_audit and row.get("FDocumentStatus") != "C":
            return None
        return self._result(bill_number, row, adopted=True)

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Save the order and take it as far as the tenant's policy says, or, when an earlier
        attempt's outcome is unknown, look it up first (once) and continue from its status.

        Raises ``PermanentError`` for payloads the ERP cannot take (mapping problems, refused
        references) and lets the client's Retryable/AuthExpired errors through.
        """
        bill_number = self._bill_number(payload)
        if attempt.outcome_unknown:
            existing = self._find_order(bill_number)
            if existing is not None:
                return self._advance(key, bill_number, existing, attempt, adopted=True)
        customer_number = self.ensure_customer(key, payload)
        salesperson = self.resolve_salesperson(payload.get("salesperson"))
        try:
            model = crm_order_to_sales_order_model({**payload, "salesperson": salesperson}, bill_number=bill_number,
                                                   customer_number=customer_number, org_number=self._org_number)
        except MappingError as exc:
            raise self._mapping_failure(exc, bill_number) from exc
        try:
            saved = self._client.save(SALES_ORDER_FORM, model, audit_key=key)
        except KingdeeBusinessError as exc:
            # Another attempt won the race for this bill number: adopt its order.
            if any((e.field or "").lower() == "fbillno" for e in exc.field_errors):
                existing = self._find_order(bill_number)
                if existing is not None:
                    return self._advance(key, bill_number, existing, attempt, adopted=True)
            raise
        extra = salesperson_outcome(str(payload.get("salesperson") or "").strip(), salesperson, "salesperson_number")
        row = {"FID": saved.id, "FBillNo": saved.number, "FDocumentStatus": "A", "FCustId.FNumber": customer_number}
        return self._advance(key, bill_number, row, attempt, adopted=False, extra=extra)

    # -- steps -----------------------------------------------------------------------------

    def ensure_customer(self, key: str, payload: Mapping[str, Any]) -> str:
        """The ERP number of the order's customer; creates the customer when the ERP lacks it.

        Lookup order: unified social credit code (the identity both systems share), then the
        ERP number the CRM knows or would assign. Several ERP customers with one code happen in
        real data; the one whose number the CRM already knows wins, then an enabled one.
        """
        customer = payload.get("customer")
        if not isinstance(customer, Mapping):
            raise self._mapping_failure(MappingError("customer: missing customer object"), None)
        try:
            number = crm_customer_number(customer)
        except MappingError as exc:
            raise self._mapping_failure(exc, None) from exc
        credit_code = str(customer.get("credit_code") or "").strip().upper()
        cached = self._customers.get((credit_code, number))
        if cached is not None:
            return cached
        resolved = self._resolve_or_create_customer(key, payload, customer, number, credit_code)
        self._customers[(credit_code, number)] = resolved
        return resolved

    def _resolve_or_create_customer(self, key: str, payload: Mapping[str, Any], customer: Mapping[str, Any],
                                    number: str, credit_code: str) -> str:
        if credit_code:
            rows = self._client.execute_bill_query(
                CUSTOMER_FORM, CUSTOMER_LOOKUP_KEYS, f"FSOCIALCRECODE = {quote_literal(credit_code)}",
                "FCUSTID ASC", 0, 50)
            if rows:
                rows.sort(key=lambda r: (str(r.get("FNumber")) != number, r.get("FForbidStatus") == "B"))
                return str(rows[0]["FNumber"])
        if self._client.find_bill_numbers(CUSTOMER_FORM, [number], number_key="FNumber",
                                          field_keys=CUSTOMER_LOOKUP_KEYS):
            return number
        try:
            model = crm_customer_to_model(customer, number=number, org_number=self._org_number,
                                          currency=str(payload.get("currency") or "CNY"),
                                          salesperson=self.resolve_salesperson(payload.get("salesperson")))
        except MappingError as exc:
            raise self._mapping_failure(exc, number) from exc
        try:
            self._client.save(CUSTOMER_FORM, model, auto_submit_and_audit=self._audit_new_customers,
                              audit_key=key)
        except KingdeeBusinessError as exc:
            # A concurrent attempt created the same number first: use it.
            if any((e.field or "").lower() == "fnumber" for e in exc.field_errors) and self._client.find_bill_numbers(
                    CUSTOMER_FORM, [number], number_key="FNumber", field_keys=CUSTOMER_LOOKUP_KEYS):
                return number
            raise
        return number

    def resolve_salesperson(self, value: Any) -> str | None:
        """ERP salesperson number for the CRM's salesperson (a number or a name), or None."""
        wanted = str(value or "").strip()
        if not wanted:
            return None
        if wanted not in self._salespeople:
            literal = quote_literal(wanted)
            rows = self._client.execute_bill_query(
                "BD_Saler", ("FNumber", "FName", "FForbidStatus"), f"FNumber = {literal} or FName = {literal}",
                "FNumber ASC", 0, 20)
            # An exact number beats a name; an enabled person beats a forbidden one.
            rows.sort(key=lambda r: (str(r.get("FNumber")) != wanted, r.get("FForbidStatus") == "B"))
            self._salespeople[wanted] = str(rows[0]["FNumber"]) if rows else None
        return self._salespeople[wanted]

    def _advance(self, key: str, bill_number: str, row: Mapping[str, Any], attempt: Attempt, *, adopted: bool,
                 extra: Mapping[str, Any] | None = None) -> WriteResult:
        """Take the order through Submit and Audit when configured, from its current status,
        reporting each status the ERP is known to hold before the next step."""
        status = str(row.get("FDocumentStatus") or "")
        attempt.progress(self._result(bill_number, row, adopted=adopted, extra=extra))
        if self._submit_and_audit:
            if status in ("A", "D"):
                self._client.submit(SALES_ORDER_FORM, [bill_number], audit_key=key)
                status = "B"
                attempt.progress(self._result(bill_number, {**row, "FDocumentStatus": status}, adopted=adopted,
                                              extra=extra))
            if status == "B":
                self._client.audit(SALES_ORDER_FORM, [bill_number], audit_key=key)
                status = "C"
        return self._result(bill_number, {**row, "FDocumentStatus": status}, adopted=adopted, extra=extra)

    @staticmethod
    def _result(bill_number: str, row: Mapping[str, Any], *, adopted: bool,
                extra: Mapping[str, Any] | None = None) -> WriteResult:
        """The outcome (or progress) as the outbox records it; ``customer_number`` lets the hub
        link its customer."""
        return WriteResult(external_id=bill_number, status=row.get("FDocumentStatus"), adopted=adopted,
                           detail={"fid": row.get("FID"), "customer_number": row.get("FCustId.FNumber"),
                                   **(extra or {})})

    def _find_order(self, bill_number: str) -> dict[str, Any] | None:
        return self._client.find_bill_numbers(SALES_ORDER_FORM, [bill_number], field_keys=ORDER_LOOKUP_KEYS).get(
            bill_number)

    def _bill_number(self, payload: Mapping[str, Any]) -> str:
        try:
            return crm_bill_number(str(payload.get("order_number") or ""))
        except MappingError as exc:
            raise self._mapping_failure(exc, None) from exc

    def _mapping_failure(self, exc: MappingError, external_id: str | None) -> PermanentError:
        return PermanentError(str(exc), system=self.system, operation=self.operation, external_id=external_id,
                              code="mapping")


__all__ = ["DEFAULT_ORG_NUMBER", "SalesOrderWriter"]
