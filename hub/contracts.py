"""The connector-neutral contract between connectors and the hub core.

A connector describes *what* it can read and write; the engine and the outbox decide
*how* (transactions, retries, audit, quarantine). Three shapes:

- :class:`StreamSpec`: one incrementally readable collection. ``read_pages(client,
  cursor)`` yields :class:`Page` objects in cursor order; ``map_record(raw)`` is a pure
  function returning a canonical record (``canonical_model.schemas``) or raising
  :class:`MappingError` (or a pydantic ``ValidationError``) with a readable reason.
- :class:`Writer`: one kind of outbound effect. ``find_existing(key, payload)`` looks the
  effect up on the external system so that a retry after a lost response *adopts* the
  earlier write instead of creating a twin; ``apply(key, payload)`` performs it;
  ``record_result`` writes the outcome back onto canonical rows (same transaction as
  the outbox row's completion).
- :class:`ConnectorSpec`: the registry entry tying client, streams, writers and sandbox
  together (see ``hub.registry``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from canonical_model.schemas import CanonicalRecord
from hub.errors import ConfigError

RawRecord = dict[str, Any]

# Canonical targets the engine knows how to upsert (see hub.upsert.TARGETS).
TARGETS = ("customer", "contact", "internal_user", "sales_order", "receivable", "receipt")


class MappingError(ValueError):
    """A source record cannot become a canonical record; the message is the reason."""


@dataclass(frozen=True)
class Page:
    """One page of raw records plus the cursor that is safe to store once it is committed.

    ``cursor_after`` is ``None`` when the stream has no cursor (full reads) or the page
    is empty; the engine then keeps the previous value.
    """

    records: list[RawRecord]
    cursor_after: str | None = None


@dataclass(frozen=True)
class StreamSpec:
    """One readable stream of a connector, described as data (dlt style)."""

    name: str  # e.g. "receivables"; the CLI and Dagster use "<system>/<name>"
    source_object: str  # vendor form/object id, e.g. "AR_receivable"
    target: str  # one of TARGETS
    key_field: str  # field of the raw record that identifies it (quarantine reference)
    cursor_field: str | None
    read_pages: Callable[[Any, str | None], Iterator[Page]]
    map_record: Callable[[RawRecord], CanonicalRecord]
    depends_on: tuple[str, ...] = ()  # streams to sync first (customers before orders)
    # Part of every record's content hash: bump it when the mapping changes, so that
    # records whose source did not change are still re-mapped once.
    mapping_version: str = "1"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"stream {self.name}: unknown target {self.target!r}")


@dataclass(frozen=True)
class Attempt:
    """Where an outbox row stands when the dispatcher calls a writer.

    ``number`` starts at 1. ``outcome_unknown`` is True when an earlier attempt may have
    reached the external system (timeout, dropped response, 5xx after sending), so
    the writer must not blindly re-apply: it looks the effect up first, or relies on
    the platform's own duplicate suppression while ``first_attempt_at`` is recent.
    """

    number: int
    first_attempt_at: dt.datetime
    outcome_unknown: bool = False


@dataclass(frozen=True)
class WriteResult:
    """What an external write produced: the external id and anything worth keeping."""

    external_id: str
    status: str | None = None
    adopted: bool = False  # True when find_existing found an earlier write
    detail: dict[str, Any] = field(default_factory=dict)


class Writer(Protocol):
    """One kind of outbound effect (an ERP sales order, a chat reminder)."""

    system: str
    operation: str

    def find_existing(self, key: str, payload: dict[str, Any]) -> WriteResult | None:
        """Return the effect if the external system already has it, else None."""
        ...

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Perform the effect. Raises a ``hub.errors.ConnectorError`` subclass on failure."""
        ...

    def record_result(self, conn: Any, payload: dict[str, Any], result: WriteResult) -> None:
        """Write the outcome onto canonical rows, inside the dispatcher's transaction."""
        ...

    def record_failure(self, conn: Any, payload: dict[str, Any], error: Exception) -> None:
        """Note a permanent failure or dead letter on canonical rows (same transaction)."""
        ...


@dataclass(frozen=True)
class ConnectorSpec:
    """Registry entry for one external system.

    ``make_client(settings, observer, sandbox_url)`` builds the connector's client from
    the hub settings (``sandbox_url`` set: talk to the in-process sandbox with its
    credentials); ``make_writer(kind, client, settings)`` builds the writer for an outbox kind;
    ``make_sandbox(**options)`` returns the sandbox ASGI app; ``check(client)`` is what
    ``hub doctor`` runs (reachability and credentials, raising ConnectorError).
    """

    system: str
    title: str
    make_client: Callable[..., Any]
    streams: tuple[StreamSpec, ...] = ()
    writer_kinds: tuple[str, ...] = ()
    make_writer: Callable[[str, Any, Any], Writer] | None = None
    make_sandbox: Callable[..., Any] | None = None
    check: Callable[[Any], None] | None = None
    # Turns a channel-neutral outbox payload (hub.reminders) into the connector's own
    # (e.g. a WeCom card), once, at enqueue time: retries then resend identical bytes.
    prepare_payload: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    # A chat directory's account id for a mobile number (WeCom user/getuserid), used to
    # link CRM users before a directory sync when the directory hides mobiles.
    account_by_mobile: Callable[[Any, str], str | None] | None = None
    # Demo support: the people and customer companies the sandbox knows, as the CRM
    # demo data set should hold them ({"people": [...], "companies": [...]}), so that
    # directory and contact syncs have someone to match.
    demo_seed: Callable[[], dict[str, list[dict[str, Any]]]] | None = None

    def stream(self, name: str) -> StreamSpec:
        """Look a stream up by name, with a clear error listing the known ones."""
        for spec in self.streams:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.streams) or "none"
        raise ConfigError(f"{self.system} has no stream {name!r} (known: {known})")
