"""Which golden customer each external customer id of a system is linked to, as a page writes by it.

A page of receivables, receipts, orders or contacts names its customers by their id in the
source system; the page's rows are written with the golden customer's id, found in
``external_identity`` (:func:`customer_ids_for`). Two things make that safe and cheap:

- **The lock.** A page holds its system's customer links (a shared advisory lock, taken
  with the look-up and held until the page commits); a person's merge takes them
  exclusively before it repoints a link and moves the rows that followed it
  (``hub.conflicts``). Without it a page that looked a link up just before a merge committed
  wrote its rows to the customer the merge had just emptied, and they stayed there. Shared
  holders do not wait for each other: the streams of a wave keep writing at once.
- **The memory.** A run remembers what its pages looked up (:class:`CustomerLinks`), so the
  next page looks up only the ids it has not seen: for a first load of 200,000 receivables
  over 2,000 customers, 1 look-up of 2,000 ids instead of 40 (about 0.5 s of the writer
  thread, the engine's critical path). What it remembers is dropped whenever the links'
  version moves: triggers move it, in the same transaction, on every change that could make
  a remembered answer wrong (a link repointed, re-keyed or deleted, by anyone: migration
  0024). The version is read by the statement that takes the lock, after the lock is
  granted and in a snapshot of its own (the database function ``hold_customer_links``), so a
  page that waited for a merge sees the merge's version, and looks the links up again.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from hub.engine.bulk import driver_connection, each_key, fetch_in_key_range, key_range, page_keys

# The advisory lock key of ``system``'s customer links, in this schema (one tenant's merge
# does not wait for another tenant's pages).
CUSTOMER_LINKS_LOCK = "hashtextextended(current_schema() || '|customer-links|' || %(system)s, 0)"

# Ids a run remembers at most (about 150 bytes each): past it, it starts again, so a run's
# memory stays bounded by this, not by the number of customers.
REMEMBERED_AT_MOST = 100_000


def hold_customer_links(conn: Connection, system: str, *, exclusive: bool = False) -> int | None:
    """Until the transaction ends, keep ``system``'s customer links from being repointed
    (shared: a page writing rows by them), or wait until no page uses them and keep them
    (``exclusive``: repointing one). Returns the links' version as it stands once the lock
    is held (None when the schema has none to read: remember nothing)."""
    with driver_connection(conn).cursor() as cur:
        cur.execute(f"SELECT hold_customer_links({CUSTOMER_LINKS_LOCK}, %(exclusive)s)",
                    {"system": system, "exclusive": exclusive})
        row = cur.fetchone()
    return None if row is None else row[0]


def customer_ids_for(conn: Connection, system: str, refs: set[str],
                     remembered: CustomerLinks | None = None) -> dict[str, int]:
    """Canonical customer ids for external customer ids of ``system`` (those linked; an id
    with no link is left out). The caller's transaction holds the links as they are until
    it ends (:func:`hold_customer_links`), so rows it writes by these ids are never left
    behind by a merge. With ``remembered`` (the run's :class:`CustomerLinks`), only ids it
    does not hold are looked up."""
    if not refs:
        return {}
    if remembered is not None:
        return remembered.ids_for(conn, system, refs)
    hold_customer_links(conn, system)
    return _look_up(conn, system, refs)


class CustomerLinks:
    """What one run's pages looked up of one system's customer links, kept while the links'
    version does not move (see the module docstring). Used by one thread (the run's writer).

    Only links found are kept: an id not linked yet (its customer not synced) is looked up
    again by every page that names it, so it is found as soon as it exists.
    """

    def __init__(self, system: str, at_most: int = REMEMBERED_AT_MOST) -> None:
        self.system = system
        self._at_most = at_most
        self._version: int | None = None
        self._ids: dict[str, int] = {}
        self.looked_up = 0  # ids looked up in the database, for tests and benchmarks

    def ids_for(self, conn: Connection, system: str, refs: set[str]) -> dict[str, int]:
        """:func:`customer_ids_for`: the lock taken, then the ids this run does not hold looked up."""
        if system != self.system:
            raise ValueError(f"customer links remembered for {self.system!r} were asked for {system!r}")
        version = hold_customer_links(conn, system)
        if version is None or version != self._version:
            self._ids, self._version = {}, version
        ids = self._ids
        known = {ref: ids[ref] for ref in refs if ref in ids} if ids else {}
        if len(known) < len(refs):
            missing = refs.difference(known)
            found = _look_up(conn, system, missing)
            self.looked_up += len(missing)
            known.update(found)
            if version is not None:
                if len(ids) + len(found) > self._at_most:
                    ids.clear()
                ids.update(found)
        return known


def _look_up(conn: Connection, system: str, refs: set[str]) -> dict[str, int]:
    """One range scan when the refs are close together in the index
    (:func:`hub.engine.bulk.key_range`), else one probe per ref."""
    in_range = fetch_in_key_range(conn, (
        "SELECT t.external_id, t.canonical_id FROM external_identity t WHERE t.system = %(s)s "
        f"AND t.object = 'customer' AND {key_range('t.external_id')} LIMIT %(limit)s"), {"s": system}, list(refs))
    if in_range is not None:
        return in_range
    rows = conn.execute(
        text("SELECT k.key, t.canonical_id FROM " + each_key(
            "external_identity", "t.system = :system AND t.object = 'customer' AND t.external_id = k.key")),
        {"system": system, "keys": page_keys(refs)},
    ).all()
    return dict(rows)


__all__ = ["CUSTOMER_LINKS_LOCK", "REMEMBERED_AT_MOST", "CustomerLinks", "customer_ids_for", "hold_customer_links"]
