"""Outbound effects on YonBIP: an approved CRM order becomes a ``voucherorder``, exactly once.

Two guards, one per way a resend could make a twin (erp-apis.md §2.4):

- ``voucherorder/singleSave`` takes ``resubmitCheckKey`` inside ``data``: the CRM order's outbox
  idempotency key (hashed to 32 characters when longer, :func:`resubmit_check_key`). Within an
  hour YonBIP replays the first save's result; later it answers the duplicate code with the
  earlier order's id, which the client turns into that order (``Saved.duplicate``).
- The order's code is deterministic (``CRM-<order_number>``, the same rule as Kingdee's), and
  when an earlier attempt's outcome is unknown the writer looks the order up by that code
  first (once) and *adopts* it, continuing from the state found; so does every retry, because a
  replayed save answers what the *first* save answered (state "open"), not the state the order
  has reached since. A save refused because the code exists is adopted the same way.

**Saved ≠ effective** (§2.5): with ``submit_and_audit`` the order goes save (verifystate 0,
"open") → ``batchsubmit`` (1) → ``batchaudit`` (2, "audited"). Batch calls are not idempotent,
so each step starts from the state the ERP is known to hold (the save's, or the lookup's), and
every state reached is reported through ``attempt.progress`` before the next step
(``hub.rules.orders`` records it on the CRM order).

The customer is resolved first — unified social credit code (``newlist`` ``creditCode``
filter), then the code the hub knows or would assign — and created with
``merchant/idempotent/newinsert`` when YonBIP lacks it, with its own ``resubmitCheckKey``. The
CRM salesperson (the owner's name) becomes the order's ``corpContact`` when the staff archive
knows exactly one person of that name or code; otherwise it is left off (an unknown
salesperson must not keep an approved order out of the ERP) and the result says so.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from connectors.kit.orders import (
    CrmCustomer,
    CrmOrder,
    crm_bill_number,
    parse_crm_customer,
    parse_crm_order,
    salesperson_outcome,
)
from connectors.yonyou.client import STAFF_LIST, Json, YonyouBusinessError, YonyouClient
from connectors.yonyou.mapping import (
    ORDER_STATES,
    crm_customer_to_merchant,
    crm_order_to_voucher,
    resubmit_check_key,
)
from hub.contracts import Attempt, MappingError, WriteResult
from hub.errors import PermanentError

OPEN, SUBMITTED, AUDITED = (ORDER_STATES[n] for n in (0, 1, 2))


class SalesOrderWriter:
    """Creates (and, when configured, submits and audits) the YonBIP order of an approved CRM order.

    ``org_code`` is the sales, settlement and stock organisation; ``transaction_type`` the
    sales order transaction type code.
    """

    system = "yonyou"
    operation = "create_sales_order"

    def __init__(self, client: YonyouClient, *, org_code: str, transaction_type: str,
                 submit_and_audit: bool = True) -> None:
        self._client = client
        self._org_code = org_code
        self._transaction_type = transaction_type
        self._submit_and_audit = submit_and_audit
        self._lock = threading.Lock()
        self._customers: dict[tuple[str, str], str] = {}  # (credit code, CRM code) → YonBIP code
        self._staff: dict[str, str] | None = None  # name or code → staff code (unique names only)

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Save the order and take it as far as the policy says; when an earlier attempt's
        outcome is unknown, look it up by code first (once) and continue from its state."""
        try:
            order = parse_crm_order(payload)
            code = crm_bill_number(order.order_number)
        except MappingError as exc:
            raise self._mapping_failure(exc, None) from exc
        if attempt.outcome_unknown or attempt.number > 1:
            # An earlier attempt may have saved (or submitted) the order. Unlike Kingdee, a save
            # cannot tell: within the hour YonBIP replays the first reply verbatim (state
            # "open"), so the state is read, not assumed.
            found = self._client.find_order(code)
            if found is not None:
                return self._advance(key, code, found, attempt, adopted=True)
        customer_code = self.ensure_customer(key, payload)
        crm_salesperson = str(payload.get("salesperson") or "").strip()
        salesperson = self.resolve_salesperson(crm_salesperson)
        data = self._voucher(order, code, customer_code, key, salesperson)
        try:
            saved = self._client.order_save(data, key=key)
        except YonyouBusinessError as exc:
            found = self._client.find_order(code) if code in exc.message else None
            if found is None:
                raise
            return self._advance(key, code, found, attempt, adopted=True)  # another attempt saved it first
        row = {"id": saved.id, "code": code, "verifystate": 0, "agentId_code": customer_code}
        return self._advance(key, code, row, attempt, adopted=saved.duplicate,
                             extra=salesperson_outcome(crm_salesperson, salesperson, "salesperson_code"))

    def _voucher(self, order: CrmOrder, code: str, customer_code: str, key: str,
                 salesperson: str | None) -> dict[str, Any]:
        try:
            return crm_order_to_voucher(order, code=code, customer_code=customer_code, org_code=self._org_code,
                                        transaction_type=self._transaction_type,
                                        check_key=resubmit_check_key(key), salesperson=salesperson)
        except MappingError as exc:
            raise self._mapping_failure(exc, code) from exc

    # -- customer and salesperson ------------------------------------------------------------

    def ensure_customer(self, key: str, payload: Mapping[str, Any]) -> str:
        """The YonBIP code of the order's customer; created when YonBIP lacks it.

        Lookup order: the unified social credit code (the identity both sides share), then the
        code the CRM knows or would assign. Of several customers with one credit code, the one
        whose code the CRM knows wins.
        """
        try:
            customer = parse_crm_customer(payload)
        except MappingError as exc:
            raise self._mapping_failure(exc, None) from exc
        with self._lock:
            known = self._customers.get((customer.credit_code, customer.number))
        if known is None:
            known = self._resolve_or_create(customer, key)
            with self._lock:
                self._customers[(customer.credit_code, customer.number)] = known
        return known

    def _resolve_or_create(self, customer: CrmCustomer, key: str) -> str:
        if customer.credit_code:
            rows = self._client.merchant_page(1, 20, creditCode=customer.credit_code)
            codes = [str(r.get("code")) for r in rows if str(r.get("creditCode") or "").upper() == customer.credit_code]
            if codes:
                return customer.number if customer.number in codes else codes[0]
        if any(str(r.get("code")) == customer.number for r in self._client.merchant_page(1, 5, code=customer.number)):
            return customer.number
        try:
            data = crm_customer_to_merchant(customer, org_code=self._org_code,
                                            check_key=resubmit_check_key(f"crm-customer:{customer.number}"))
        except MappingError as exc:
            raise self._mapping_failure(exc, customer.number) from exc
        return self._client.merchant_insert(data, key=key).code or customer.number

    def resolve_salesperson(self, wanted: str) -> str | None:
        """The staff code of the CRM's salesperson (a staff code or a unique name), or None."""
        if not wanted:
            return None
        with self._lock:
            staff = self._staff
        if staff is None:
            staff = self._load_staff()
            with self._lock:
                self._staff = staff
        return staff.get(wanted)

    def _load_staff(self) -> dict[str, str]:
        by_name: dict[str, list[str]] = {}
        codes: set[str] = set()
        for page in self._client.list_pages(STAFF_LIST, 500):
            for person in page.records:
                code, name = str(person.get("code") or "").strip(), str(person.get("name") or "").strip()
                if code:
                    codes.add(code)
                    by_name.setdefault(name, []).append(code)
        unique = {name: found[0] for name, found in by_name.items() if name and len(found) == 1}
        return {**unique, **{code: code for code in codes}}

    # -- steps -------------------------------------------------------------------------------

    def _advance(self, key: str, code: str, row: Json, attempt: Attempt, *, adopted: bool,
                 extra: Mapping[str, Any] | None = None) -> WriteResult:
        """Submit and audit from the state the ERP holds, reporting each state reached first."""
        state = _state_of(row)
        attempt.progress(self._result(code, row, state, adopted, extra))
        if self._submit_and_audit:
            order_id = str(row.get("id"))
            if state == OPEN:
                self._batch("batchsubmit", order_id, code, key)
                state = SUBMITTED
                attempt.progress(self._result(code, row, state, adopted, extra))
            if state == SUBMITTED:
                self._batch("batchaudit", order_id, code, key)
                state = AUDITED
        return self._result(code, row, state, adopted, extra)

    def _batch(self, action: str, order_id: str, code: str, key: str) -> None:
        outcome = self._client.order_batch(action, [order_id], key=key)
        if not outcome.ok:
            raise YonyouBusinessError(f"{action} refused: {'; '.join(outcome.messages) or 'failCount > 0'}",
                                      system=self.system, operation=f"sd/voucherorder/{action}", external_id=code,
                                      code="failCount")

    @staticmethod
    def _result(code: str, row: Mapping[str, Any], state: str | None, adopted: bool,
                extra: Mapping[str, Any] | None) -> WriteResult:
        """The outcome as the outbox records it; ``customer_number`` lets the hub link its customer."""
        return WriteResult(external_id=code, status=state, adopted=adopted,
                           detail={"id": row.get("id"), "customer_number": row.get("agentId_code"), **(extra or {})})

    def _mapping_failure(self, exc: MappingError, external_id: str | None) -> PermanentError:
        return PermanentError(str(exc), system=self.system, operation=self.operation, external_id=external_id,
                              code="mapping")


def _state_of(row: Mapping[str, Any]) -> str | None:
    value = row.get("verifystate")
    try:
        return ORDER_STATES.get(int(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


__all__ = ["SalesOrderWriter"]
