"""Masking of personal data for people who may not see it: pure functions.

Mobiles keep their first three and last four digits (``138****5678``), e-mail
addresses their first character and domain (``z***@corp.cn``): enough to tell two
contacts apart and to recognise one's own, not enough to call or write. Pages and API
answers mask unless the principal has ``SEE_PERSONAL_DATA`` for that customer
(:func:`mask_record`); the audit log masks the same way (:mod:`hub.audit`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Field names that hold personal data wherever they appear (contacts, users, leads).
PERSONAL_FIELDS = frozenset({"mobile", "email", "phone_mobile", "owner_mobile", "owner_email", "contact_mobile",
                             "contact_email"})
_DIGITS = re.compile(r"\d")


def mask_mobile(value: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; ``+86 138 1234 5678`` → ``+86 138****5678``.

    Shorter numbers keep at most their last two digits; None stays None.
    """
    if value is None:
        return None
    text = value.strip()
    digits = _DIGITS.findall(text)
    if len(digits) >= 11:
        national = "".join(digits[-11:])
        country = "".join(digits[:-11])
        prefix = f"+{country} " if country else ""
        return f"{prefix}{national[:3]}****{national[-4:]}"
    if len(digits) <= 2:
        return "*" * len(text)
    return "*" * (len(digits) - 2) + "".join(digits[-2:])


def mask_email(value: str | None) -> str | None:
    """``zhangsan@corp.cn`` → ``z***@corp.cn``; text without ``@`` → ``***``; None stays None."""
    if value is None:
        return None
    local, at, domain = value.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_value(field: str, value: Any) -> Any:
    """``value`` masked when ``field`` names personal data (by its name), else unchanged."""
    if not isinstance(value, str):
        return value
    if "email" in field:
        return mask_email(value)
    if "mobile" in field:
        return mask_mobile(value)
    return value


def mask_record(record: Mapping[str, Any], fields: Iterable[str] = PERSONAL_FIELDS) -> dict[str, Any]:
    """A copy of ``record`` with its personal-data ``fields`` masked."""
    names = frozenset(fields)
    return {k: mask_value(k, v) if k in names else v for k, v in record.items()}


def mask_records(records: Iterable[Mapping[str, Any]], fields: Iterable[str] = PERSONAL_FIELDS) -> list[dict[str, Any]]:
    """:func:`mask_record` over ``records``."""
    names = frozenset(fields)
    return [mask_record(r, names) for r in records]


def has_personal_data(record: Mapping[str, Any], fields: Iterable[str] = PERSONAL_FIELDS) -> bool:
    """Whether ``record`` holds a non-empty personal-data field (an unmasked read of it is audited)."""
    return any(isinstance(record.get(f), str) and record.get(f) for f in fields)
