"""Identity resolution: which golden customer is this source record?

Deterministic rules, strongest first:

1. an earlier link of the same (system, external id) (``external_identity``);
2. the unified social credit code (统一社会信用代码), validated with the GB 32100-2015
   check character;
3. the normalized company name (full/half width, spaces, punctuation, legal-form
   suffixes such as 有限公司 / 股份有限公司, "（中国）" variants);
4. a contact mobile or email already known at exactly one customer.

When two rules point at different customers, or a rule is ambiguous, a conflict is
reported and nothing is merged: the record keeps (or gets) its own customer and a
person decides. Everything here is pure; the engine fetches the lookups per page.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# GB 32100-2015: 31 characters, no I, O, Z, S, V.
CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CHAR_VALUE = {ch: i for i, ch in enumerate(CREDIT_CODE_CHARSET)}


def credit_code_check_char(first17: str) -> str:
    """The 18th (check) character for the first 17 characters of a credit code."""
    total = sum(_CHAR_VALUE[ch] * w for ch, w in zip(first17, _CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARSET[(31 - total % 31) % 31]


def normalize_credit_code(raw: str | None) -> str | None:
    """Upper-case, strip spaces and full-width forms; None for empty input."""
    if raw is None:
        return None
    code = unicodedata.normalize("NFKC", raw).strip().upper().replace(" ", "").replace("-", "")
    return code or None


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` (already normalized) is not a valid credit code, or None if it is."""
    if len(code) != 18:
        return f"credit code {code!r} has {len(code)} characters, expected 18"
    bad = sorted({ch for ch in code if ch not in _CHAR_VALUE})
    if bad:
        return f"credit code {code!r} contains characters not allowed by GB 32100-2015: {''.join(bad)}"
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        return f"credit code {code!r} fails the GB 32100-2015 check (check character should be {expected})"
    return None


def is_valid_credit_code(raw: str | None) -> bool:
    """True when ``raw`` normalizes to a well-formed code with the right check character."""
    code = normalize_credit_code(raw)
    return code is not None and credit_code_problem(code) is None


# Longest first, so 股份有限公司 is removed whole rather than leaving 股份.
_LEGAL_FORMS = tuple(sorted(
    (
        "股份有限公司", "有限责任公司", "有限公司", "集团公司", "总公司", "分公司",
        "股份公司", "公司", "coltd", "co ltd", "limited", "ltd", "inc", "corporation", "corp", "llc",
    ),
    key=len, reverse=True,
))
_CHINA_MARKERS = re.compile(r"\((中国|中國|china)\)", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[\s\.,，。·・'\"“”‘’、;；:：!！?？&＆\-_/\\|()（）\[\]【】《》<>{}]+")


def normalize_company_name(name: str) -> str:
    """A comparison key for company names: equal keys mean "the same name".

    >>> normalize_company_name("深圳市腾飞科技有限公司") == normalize_company_name("深圳市 腾飞科技（中国）有限公司")
    True
    """
    text = unicodedata.normalize("NFKC", name).strip().lower()
    text = _CHINA_MARKERS.sub("", text)
    text = _PUNCTUATION.sub(" ", text).strip()
    changed = True
    while changed:  # "xx有限公司 分公司" style endings can stack
        changed = False
        for form in _LEGAL_FORMS:
            if text.endswith(form) and len(text) > len(form):
                text = text[: -len(form)].strip()
                changed = True
    return text.replace(" ", "")


def normalize_mobile(raw: str | None) -> str | None:
    """Mainland mobile numbers as 11 digits (drops +86, spaces, dashes); others as digits."""
    if not raw:
        return None
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", raw))
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None


def normalize_email(raw: str | None) -> str | None:
    """Lower-cased, trimmed e-mail, or None."""
    if not raw or "@" not in raw:
        return None
    return unicodedata.normalize("NFKC", raw).strip().lower()


@dataclass(frozen=True)
class CustomerCandidate:
    """What the resolver needs to know about one incoming customer record."""

    external_id: str
    name: str
    credit_code: str | None = None
    mobiles: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    # keys of ``Lookups.by_contact`` computed by the caller: the blind indexes of the record's
    # mobiles/e-mails (``hub.vault``), since the store holds those, not the values. When
    # given they are used instead of ``mobiles``/``emails``.
    contact_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnownCustomer:
    """An existing golden record as the lookups return it."""

    id: int
    credit_code: str | None


@dataclass(frozen=True)
class Lookups:
    """Everything the resolver may match against, fetched once per page."""

    by_link: Mapping[str, int] = field(default_factory=dict)  # external id -> customer id
    by_credit_code: Mapping[str, KnownCustomer] = field(default_factory=dict)
    by_name: Mapping[str, tuple[KnownCustomer, ...]] = field(default_factory=dict)
    # normalised mobile/e-mail, or their blind index (``contact_keys``) -> customer ids
    by_contact: Mapping[str, frozenset[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Conflict:
    """Two rules disagree, a rule is ambiguous, or an input is invalid."""

    reason: str
    candidate_ids: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class Resolution:
    """The resolver's verdict for one candidate.

    ``customer_id`` None means "create a new golden record". ``credit_code`` is the
    validated, normalized code to store (None when absent or invalid).
    """

    customer_id: int | None
    rule: str  # link | credit_code | name | contact | new
    credit_code: str | None
    normalized_name: str
    conflicts: tuple[Conflict, ...] = ()


def resolve_customer(candidate: CustomerCandidate, known: Lookups) -> Resolution:
    """Decide which golden customer ``candidate`` is; see the module docstring."""
    conflicts: list[Conflict] = []
    name_key = normalize_company_name(candidate.name)
    code = normalize_credit_code(candidate.credit_code)
    if code is not None and (problem := credit_code_problem(code)) is not None:
        conflicts.append(Conflict("invalid_credit_code", (), problem))
        code = None

    linked = known.by_link.get(candidate.external_id)
    by_code = known.by_credit_code.get(code) if code else None
    by_name = known.by_name.get(name_key, ())

    if linked is not None:
        if by_code is not None and by_code.id != linked:
            conflicts.append(Conflict(
                "credit_code_points_elsewhere", (linked, by_code.id),
                f"record was linked to customer {linked}, but credit code {code} belongs to customer {by_code.id}",
            ))
            code = None  # the code is taken by another golden record; do not steal it
        return Resolution(linked, "link", code, name_key, tuple(conflicts))

    if by_code is not None:
        others = tuple(k.id for k in by_name if k.id != by_code.id and k.credit_code not in (None, code))
        if others:
            conflicts.append(Conflict(
                "credit_code_and_name_disagree", (by_code.id, *others),
                f"credit code {code} is customer {by_code.id}; the name matches customer(s) {list(others)}",
            ))
        return Resolution(by_code.id, "credit_code", code, name_key, tuple(conflicts))

    if by_name:
        compatible = [k for k in by_name if k.credit_code is None or code is None]
        different_code = [k for k in by_name if k.credit_code is not None and code is not None]
        if different_code and not compatible:
            conflicts.append(Conflict(
                "same_name_different_credit_code", tuple(k.id for k in different_code),
                f"name matches customer(s) {[k.id for k in different_code]} whose credit code differs from {code}",
            ))
            return Resolution(None, "new", code, name_key, tuple(conflicts))
        if len(compatible) == 1:
            return Resolution(compatible[0].id, "name", code, name_key, tuple(conflicts))
        conflicts.append(Conflict(
            "ambiguous_name", tuple(k.id for k in compatible),
            f"name matches {len(compatible)} customers: {[k.id for k in compatible]}",
        ))
        return Resolution(None, "new", code, name_key, tuple(conflicts))

    contact_ids = _contact_matches(candidate, known.by_contact)
    if len(contact_ids) == 1:
        return Resolution(next(iter(contact_ids)), "contact", code, name_key, tuple(conflicts))
    if len(contact_ids) > 1:
        conflicts.append(Conflict(
            "ambiguous_contact", tuple(sorted(contact_ids)),
            f"contact mobile/email is known at customers {sorted(contact_ids)}",
        ))
    return Resolution(None, "new", code, name_key, tuple(conflicts))


def _contact_matches(candidate: CustomerCandidate, by_contact: Mapping[str, frozenset[int]]) -> set[int]:
    keys: Iterable[str | None] = candidate.contact_keys or [
        *(normalize_mobile(m) for m in candidate.mobiles),
        *(normalize_email(e) for e in candidate.emails),
    ]
    found: set[int] = set()
    for key in keys:
        if key:
            found |= by_contact.get(key, frozenset())
    return found
