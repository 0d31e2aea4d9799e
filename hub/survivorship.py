"""Survivorship: which source's value a golden customer shows, field by field.

Several records resolve to one golden customer (``hub.identity``): a Kingdee customer, a
YonBIP customer, a CRM customer, two customers of one ERP. Each of them keeps what *it*
says about the company in its own ``external_identity`` row (``source_values``: the
fields it gives, the time the record last changed at its source, when the hub read it).
The golden record is a function of those claims, never of the order syncs run in:

1. **Precedence per field.** Each field has an ordered list of systems
   (``HUB_SURVIVORSHIP__PRECEDENCE`` for every field, ``HUB_SURVIVORSHIP__FIELD_PRECEDENCE``
   per field). The highest-ranked system that gives a value (not empty) wins. Systems may
   share a rank (``kingdee=yonyou``); systems not named rank after all named ones, equal.
   Defaults: the CRM first (salespeople curate name, region, industry and the owner; the
   CRM is the system of record for who owns a customer), then ``hub`` (a person's decision in
   the hub, such as claiming a customer from the public pool), then Kingdee, then YonBIP; for
   ``credit_limit`` and ``currency`` the ERPs first (finance sets credit in the ERP).
2. **Ties** (the same rank: two records of one system, or systems of equal rank): the value
   of the record changed most recently *at its source* (its ``modified_at``; none counts as
   oldest), then the smaller (system, external id), so the answer is always the same.
3. **An empty value is no claim**: a source that leaves a field empty never clears another
   source's value; when no source claims a field the golden value stays as it is.
4. **Values without a linked record** (set by a person in the hub, or stored before
   survivorship existed) take part under the system their provenance names, changed when
   their provenance says they were fetched; a record's own newer claim replaces its old one.

Nothing is lost: a value that does not survive stays in its record's ``source_values`` and
the 360° profile lists, per field, every source's value and marks the disagreements
(``canonical_model.profile``: "Kingdee says X, YonBIP says Y"). The customer row is written
only when a surviving value or its provenance changes, so a re-sync that changes nothing,
or a change at a lower-ranked source that does not survive, writes nothing to it.

The precedence is a setting validated at startup (an unknown system or field is a
configuration error); the sync engine finds it through the database handle it writes to
(:func:`bind_precedence`, done by ``Database.from_settings`` and ``HubRuntime``), defaults
otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.identity import normalize_company_name

# Golden fields decided by survivorship, in the order the profile shows them.
FIELDS = ("name", "credit_code", "region", "industry", "size", "phone", "address", "owner_id",
          "credit_limit", "currency")
# The system name of values a person set in the hub itself (hub.rules.pool: a claim or an
# assignment from the public pool), not read from any external system.
MANUAL = "hub"

DEFAULT_PRECEDENCE = "crm,hub,kingdee,yonyou"
DEFAULT_FIELD_PRECEDENCE: dict[str, str] = {
    "credit_limit": "kingdee,yonyou,crm,hub",
    "currency": "kingdee,yonyou,crm,hub",
}

Ranks = tuple[tuple[str, ...], ...]  # systems of each rank, highest first


class PrecedenceError(ValueError):
    """A precedence text that does not parse or names an unknown system or field."""


def parse_ranks(text: str, known: Iterable[str] | None = None, *, where: str = "precedence") -> Ranks:
    """``"crm,hub,kingdee=yonyou"`` → ``(("crm",), ("hub",), ("kingdee", "yonyou"))``.

    Commas separate ranks (highest first), ``=`` joins systems of one rank. With ``known``,
    a system outside it is a :class:`PrecedenceError` naming it; so is a system named twice.
    """
    ranks: list[tuple[str, ...]] = []
    seen: set[str] = set()
    allowed = set(known) if known is not None else None
    for part in text.split(","):
        systems = tuple(s.strip() for s in part.split("=") if s.strip())
        if not systems:
            if part.strip():
                raise PrecedenceError(f"{where}: empty system name in {text!r}")
            continue
        for system in systems:
            if allowed is not None and system not in allowed:
                raise PrecedenceError(f"{where}: unknown system {system!r} (known: {', '.join(sorted(allowed))})")
            if system in seen:
                raise PrecedenceError(f"{where}: {system!r} is named twice")
            seen.add(system)
        ranks.append(systems)
    return tuple(ranks)


@dataclass(frozen=True)
class Precedence:
    """Ranks of systems for every field (``default``) and for some fields of their own."""

    default: Ranks
    by_field: Mapping[str, Ranks] = field(default_factory=dict)

    @classmethod
    def parse(cls, default: str = DEFAULT_PRECEDENCE, by_field: Mapping[str, str] | None = None,
              known: Iterable[str] | None = None) -> Precedence:
        """Build from the settings' texts (see :func:`parse_ranks`); an unknown field is an error."""
        known_list = list(known) if known is not None else None
        fields = dict(DEFAULT_FIELD_PRECEDENCE if by_field is None else by_field)
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise PrecedenceError(f"field_precedence: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
        return cls(parse_ranks(default, known_list),
                   {f: parse_ranks(text, known_list, where=f"field_precedence[{f}]") for f, text in fields.items()})

    def ranks(self, field_name: str) -> Ranks:
        """The ranks that decide ``field_name``."""
        return self.by_field.get(field_name, self.default)

    def rank(self, field_name: str, system: str) -> int:
        """0 for the highest rank; systems not named share the rank after the last."""
        ranks = self.ranks(field_name)
        for index, systems in enumerate(ranks):
            if system in systems:
                return index
        return len(ranks)


DEFAULT = Precedence.parse()


@dataclass(frozen=True)
class Claim:
    """What one source says about one field: the value as stored in JSON, with where and when."""

    system: str
    external_id: str | None
    value: Any
    changed_at: str | None = None  # when the record last changed at its source (ISO text)
    fetched_at: str | None = None  # when the hub read this version


def _changed_key(changed_at: str | None) -> float:
    """Sort key: most recent first, none last."""
    if not changed_at:
        return float("inf")
    try:
        moment = dt.datetime.fromisoformat(changed_at)
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return -moment.timestamp()


def survivor(field_name: str, claims: Sequence[Claim], precedence: Precedence = DEFAULT) -> Claim | None:
    """The claim that decides ``field_name`` (module rules 1-3), or None when nothing is claimed."""
    present = [c for c in claims if c.value not in (None, "")]
    if not present:
        return None
    return min(present, key=lambda c: (precedence.rank(field_name, c.system), _changed_key(c.changed_at),
                                       c.system, c.external_id or ""))


def as_json(field_name: str, value: Any) -> Any:
    """A golden field's value as ``source_values`` stores it (money as text, ids as ints)."""
    if value is None:
        return None
    if field_name == "credit_limit":
        return str(value)
    if field_name == "owner_id":
        return int(value)
    return value


def from_json(field_name: str, value: Any) -> Any:
    """The column value of a stored claim (inverse of :func:`as_json`)."""
    if value is None:
        return None
    if field_name == "credit_limit":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if field_name == "owner_id":
        return int(value)
    return value


def same_value(field_name: str, left: Any, right: Any) -> bool:
    """Equal as column values (``100`` and ``100.00`` are one credit limit)."""
    return bool(from_json(field_name, as_json(field_name, left)) == from_json(field_name, as_json(field_name, right)))


# --- the golden record from its records' claims -------------------------------------------

_COLUMNS = ", ".join(FIELDS)


def claims_entry(values: Mapping[str, Any], changed_at: dt.datetime | None, fetched_at: dt.datetime,
                 previous: Mapping[str, Any] | None, *, keep: Iterable[str] = ()) -> tuple[dict[str, Any], bool]:
    """What a customer record says, as ``external_identity.source_values`` stores it (``values``:
    golden fields, empty ones left out), and whether that differs from ``previous`` (what it
    said before; kept as it was, times included, when the values are the same). Fields in
    ``keep`` that ``values`` lacks keep the earlier claim (fields its source names apart from
    the record: the CRM API's owner)."""
    claims = {f: as_json(f, v) for f, v in values.items() if f in FIELDS and v not in (None, "")}
    earlier = (previous or {}).get("values") or {}
    claims.update({f: earlier[f] for f in keep if f not in claims and f in earlier})
    if previous is not None and previous.get("values") == claims:
        return dict(previous), False
    return {"values": claims, "changed_at": changed_at.isoformat() if changed_at else None,
            "fetched_at": fetched_at.isoformat()}, True


def claim_value(conn: Connection, system: str, external_id: str, field_name: str, value: Any,
                at: dt.datetime) -> bool:
    """Add or replace one field of a linked record's claims (the CRM API's owner, which its
    body carries as an id rather than a record field); True when the claim changed."""
    current = conn.execute(sa.text(
        "SELECT source_values FROM external_identity WHERE system = :s AND object = 'customer' "
        "AND external_id = :x FOR UPDATE"), {"s": system, "x": external_id}).scalar()
    stored = dict(current or {"values": {}, "changed_at": None, "fetched_at": at.isoformat()})
    values = dict(stored.get("values") or {})
    if value in (None, ""):
        if field_name not in values:
            return False
        del values[field_name]
    elif field_name in values and same_value(field_name, values[field_name], value):
        return False
    else:
        values[field_name] = as_json(field_name, value)
    stored.update(values=values, changed_at=at.isoformat(), fetched_at=at.isoformat())
    conn.execute(sa.text(
        "UPDATE external_identity SET source_values = CAST(:v AS jsonb) WHERE system = :s AND object = 'customer' "
        "AND external_id = :x"), {"v": json.dumps(stored, ensure_ascii=False), "s": system, "x": external_id})
    return True


def customer_claims(conn: Connection, customer_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(system, external id, stored claims) of every record linked to ``customer_id`` that has
    recorded its claims, by system and external id."""
    rows = conn.execute(sa.text(
        "SELECT system, external_id, source_values FROM external_identity WHERE object = 'customer' "
        "AND canonical_table = 'customer' AND canonical_id = :c AND source_values IS NOT NULL "
        "ORDER BY system, external_id"), {"c": customer_id}).all()
    return [(str(system), str(external_id), dict(stored)) for system, external_id, stored in rows]


def settle_customer(conn: Connection, customer_id: int, precedence: Precedence | None = None) -> bool:
    """Recompute golden customer ``customer_id`` from its records' claims (module rules) and
    write what changed (see :func:`settle_customers`). True when the row was written."""
    return settle_customers(conn, [customer_id], precedence) == 1


def settle_customers(conn: Connection, customer_ids: Iterable[int], precedence: Precedence | None = None) -> int:
    """Recompute golden customers from their records' claims (module rules) and write what
    changed: the surviving values, their provenance (``field_sources``), and ``updated_at``
    when a value changed. Returns how many rows were written. Two queries for all of them,
    then one UPDATE per customer that changed.

    The rows are locked first, in id order, so two syncs settling one customer at once take
    turns and the second sees the first's claims (READ COMMITTED reads them afresh after the
    lock, in the next statement)."""
    ids = sorted({int(i) for i in customer_ids})
    if not ids:
        return 0
    rules = precedence or precedence_for(conn)
    rows = conn.execute(sa.text(f"SELECT id, {_COLUMNS}, field_sources FROM customer WHERE id = ANY(:ids) "
                                "ORDER BY id FOR UPDATE"), {"ids": ids}).all()
    linked_by: dict[int, list[tuple[str, str, dict[str, Any]]]] = {}
    for cid, system, external_id, stored in conn.execute(sa.text(
            "SELECT canonical_id, system, external_id, source_values FROM external_identity WHERE object = 'customer' "
            "AND canonical_table = 'customer' AND canonical_id = ANY(:ids) AND source_values IS NOT NULL "
            "ORDER BY canonical_id, system, external_id"), {"ids": ids}):
        linked_by.setdefault(int(cid), []).append((str(system), str(external_id), dict(stored)))
    return sum(_settle_row(conn, row, linked_by.get(int(row.id), []), rules) for row in rows)


def _settle_row(conn: Connection, row: Any, linked: list[tuple[str, str, dict[str, Any]]],
                rules: Precedence) -> bool:
    current = dict(row._mapping)
    customer_id = int(current.pop("id"))
    sources: dict[str, Any] = dict(current.pop("field_sources") or {})
    claimed_by = {(system, external_id) for system, external_id, _ in linked}
    claims: dict[str, list[Claim]] = {f: [] for f in FIELDS}
    for system, external_id, stored in linked:
        for f, value in (stored.get("values") or {}).items():
            if f in claims:
                claims[f].append(Claim(system, external_id, value, stored.get("changed_at"),
                                       stored.get("fetched_at")))
    for f in FIELDS:
        source = sources.get(f)
        if current[f] is None or not isinstance(source, dict) or not source.get("system"):
            continue
        if (source["system"], source.get("external_id")) not in claimed_by:  # rule 4
            claims[f].append(Claim(source["system"], source.get("external_id"), as_json(f, current[f]),
                                   source.get("changed_at") or source.get("fetched_at"), source.get("fetched_at")))
    values: dict[str, Any] = {}
    new_sources = dict(sources)
    for f in FIELDS:
        winner = survivor(f, claims[f], rules)
        if winner is None:
            continue  # rule 3: nobody claims it; the golden value stays
        old = sources.get(f) if isinstance(sources.get(f), dict) else None
        same_source = old is not None and (old.get("system"), old.get("external_id")) == (
            winner.system, winner.external_id)
        if not same_value(f, current[f], from_json(f, winner.value)):
            values[f] = from_json(f, winner.value)
        if not same_source or f in values:
            new_sources[f] = {"system": winner.system, "external_id": winner.external_id,
                              "fetched_at": winner.fetched_at, "changed_at": winner.changed_at}
    if "credit_code" in values and conn.execute(sa.text(
            "SELECT 1 FROM customer WHERE credit_code = :c AND id <> :id"),
            {"c": values["credit_code"], "id": customer_id}).first() is not None:
        # another golden customer holds that code (records merged by a person across two
        # codes): the code stays, the disagreement shows on the profile
        del values["credit_code"]
        new_sources["credit_code"] = sources.get("credit_code")
        if new_sources["credit_code"] is None:
            del new_sources["credit_code"]
    if not values and new_sources == sources:
        return False
    if "name" in values:
        values["normalized_name"] = normalize_company_name(values["name"])
    sets = "".join(f"{c} = :{c}, " for c in values)
    bump = "updated_at = now(), " if values else ""
    conn.execute(sa.text(f"UPDATE customer SET {sets}{bump}field_sources = CAST(:fs AS jsonb) WHERE id = :id"),
                 {**values, "fs": json.dumps(new_sources, ensure_ascii=False), "id": customer_id})
    return True


@dataclass(frozen=True)
class Disagreement:
    """A linked record whose value of a golden field is not the golden value."""

    customer_id: int
    customer: str
    field: str
    golden: Any
    golden_source: str  # "system external_id", or "" when not recorded
    system: str
    external_id: str
    value: Any


def disagreements(conn: Connection, *, limit: int = 50) -> list[Disagreement]:
    """Golden customers some linked record disagrees with, field by field (the values that did
    not survive), customers in id order; at most ``limit`` rows."""
    found: list[Disagreement] = []
    rows = conn.execute(sa.text(
        f"SELECT c.id, c.name AS customer, {', '.join('c.' + f for f in FIELDS)}, c.field_sources, e.system, "
        "e.external_id, e.source_values FROM customer c JOIN external_identity e ON e.canonical_id = c.id "
        "AND e.canonical_table = 'customer' AND e.object = 'customer' AND e.source_values IS NOT NULL "
        "WHERE c.id IN (SELECT canonical_id FROM external_identity WHERE object = 'customer' "
        "AND source_values IS NOT NULL GROUP BY canonical_id HAVING count(*) > 1) "
        "ORDER BY c.id, e.system, e.external_id")).all()
    for row in rows:
        golden = row._mapping
        for f, value in (row.source_values.get("values") or {}).items():
            if f not in FIELDS or same_value(f, value, golden[f]):
                continue
            source = (row.field_sources or {}).get(f) or {}
            found.append(Disagreement(int(row.id), str(row.customer), f, golden[f],
                                      f"{source.get('system', '')} {source.get('external_id') or ''}".strip(),
                                      str(row.system), str(row.external_id), from_json(f, value)))
            if len(found) >= limit:
                return found
    return found


def settle_all(conn: Connection, precedence: Precedence | None = None) -> int:
    """Settle every golden customer that has claims (after the precedence setting changed);
    returns how many were written. One transaction: the caller's."""
    ids = conn.execute(sa.text(
        "SELECT DISTINCT canonical_id FROM external_identity WHERE object = 'customer' "
        "AND canonical_table = 'customer' AND source_values IS NOT NULL ORDER BY 1")).scalars().all()
    return sum(settle_customers(conn, ids[start:start + 1000], precedence) for start in range(0, len(ids), 1000))


# --- the precedence a database handle writes with ------------------------------------------

_BOUND: weakref.WeakKeyDictionary[Engine, Precedence] = weakref.WeakKeyDictionary()


def bind_precedence(engine: Engine, precedence: Precedence) -> None:
    """Make ``precedence`` the one syncs and API writes through ``engine`` decide with."""
    _BOUND[engine] = precedence


def precedence_for(conn: Connection) -> Precedence:
    """The precedence bound to ``conn``'s engine, or the defaults."""
    return _BOUND.get(conn.engine, DEFAULT)


__all__ = [
    "DEFAULT",
    "DEFAULT_FIELD_PRECEDENCE",
    "DEFAULT_PRECEDENCE",
    "FIELDS",
    "MANUAL",
    "Claim",
    "Precedence",
    "PrecedenceError",
    "as_json",
    "bind_precedence",
    "claim_value",
    "claims_entry",
    "customer_claims",
    "from_json",
    "parse_ranks",
    "precedence_for",
    "same_value",
    "settle_customer",
    "survivor",
]
