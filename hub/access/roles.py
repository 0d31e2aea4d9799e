"""The roles people and machines have, and the capabilities each role carries.

The table below is the whole policy; pages and API endpoints ask for a capability, never
for a role, so changing who may do what is an edit here.

==========  ===============================================================================
role        may
==========  ===============================================================================
sales       see and write their own customers (with personal data unmasked); sales reports
            (funnel, RFM, performance) over those customers
manager     as sales, for their own customers and those of everyone reporting to them
finance     see every customer's receivables, receipts and credit; personal data masked;
            the receivables report and its exports
it          run and watch the hub: runs, dead letters, quarantine, tokens; the operations
            page; no customer data
admin       everything, including logins, tokens and unmasked personal data
crm         the CRM system itself (API tokens only): read and write every customer
==========  ===============================================================================
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A principal's role (``internal_user.role``, ``app_login.role``, ``api_token.role``)."""

    SALES = "sales"
    MANAGER = "manager"
    FINANCE = "finance"
    IT = "it"
    ADMIN = "admin"
    CRM = "crm"


class Capability(StrEnum):
    """One thing a page or an endpoint needs the principal to be allowed."""

    VIEW_CUSTOMERS = "view_customers"  # some customers: which ones, hub.access.visibility
    VIEW_ALL_CUSTOMERS = "view_all_customers"
    VIEW_FINANCE = "view_finance"  # receivables, receipts, credit
    SEE_PERSONAL_DATA = "see_personal_data"  # unmasked mobiles and e-mails (audited)
    WRITE_CRM = "write_crm"  # customers, contacts, leads, orders, tasks, follow-ups...
    MANAGE_OPERATIONS = "manage_operations"  # runs, dead letters, quarantine, conflicts
    MANAGE_ACCESS = "manage_access"  # logins, roles, API tokens, keys
    VIEW_SALES_REPORTS = "view_sales_reports"  # funnel, RFM, performance (over the customers one sees)
    VIEW_FINANCE_REPORTS = "view_finance_reports"  # receivables across every customer, exports
    SET_TARGETS = "set_targets"  # sales targets per owner/team and period


_C = Capability
CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.SALES: frozenset({_C.VIEW_CUSTOMERS, _C.VIEW_FINANCE, _C.SEE_PERSONAL_DATA, _C.WRITE_CRM,
                           _C.VIEW_SALES_REPORTS}),
    Role.MANAGER: frozenset({_C.VIEW_CUSTOMERS, _C.VIEW_FINANCE, _C.SEE_PERSONAL_DATA, _C.WRITE_CRM,
                             _C.VIEW_SALES_REPORTS}),
    Role.FINANCE: frozenset({_C.VIEW_CUSTOMERS, _C.VIEW_ALL_CUSTOMERS, _C.VIEW_FINANCE, _C.VIEW_FINANCE_REPORTS}),
    Role.IT: frozenset({_C.MANAGE_OPERATIONS, _C.MANAGE_ACCESS}),
    Role.ADMIN: frozenset(Capability),
    Role.CRM: frozenset({_C.VIEW_CUSTOMERS, _C.VIEW_ALL_CUSTOMERS, _C.VIEW_FINANCE, _C.SEE_PERSONAL_DATA,
                         _C.WRITE_CRM}),
}


def parse_role(value: str) -> Role:
    """``value`` as a Role, or ValueError naming the roles there are."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {value!r}: one of {', '.join(r.value for r in Role)}") from None
