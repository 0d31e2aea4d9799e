"""The connector-neutral contract between connectors and the hub core.

A connector describes *what* it can read and write; the engine and the outbox decide
*how* (transactions, retries, audit, quarantine). The shapes, in reading order:

- :class:`ConnectorSettings`: the base of each connector's own settings model
  (``connectors/<system>/settings.py``). The hub's ``Settings`` reads one section per
  registered connector from ``HUB_<SYSTEM>__*`` and ``hub.toml``; Dagster's resource
  config is generated from the same model.
- :class:`StreamSpec`: one incrementally readable collection. ``read_pages(client,
  cursor)`` yields :class:`Page` objects in cursor order; ``map_record(raw)`` is a pure
  function returning a canonical record (``canonical_model.records``) or raising
  :class:`~canonical_model.records.MappingError` (or a pydantic ``ValidationError``)
  with a readable reason.
- :class:`Writer`: one kind of outbound effect. ``apply(key, payload, attempt)`` performs
  it; when ``attempt.outcome_unknown`` it first looks the effect up (once) so that a retry
  after a lost response *adopts* the earlier write instead of creating a twin, and a
  multi-step write resumes from the step the external system has reached, reporting each
  step it knows of through ``attempt.progress``. What the outcome changes in the canonical
  store is not the writer's business: the domain rules register that per writer name
  (``hub.outbox.effects``).
- :class:`CallLimits`: how hard the outbox may drive a system (concurrent calls across
  every dispatcher, per-recipient send budgets such as WeCom's per-member limits),
  declared by the connector from its settings (``ConnectorSpec.limits``).
- :class:`Salesperson`: an ERP's own salesperson record (``ConnectorSpec.salespeople``), so
  the domain rules can give ERP-only customers an owner.
- :class:`SandboxSpec`: how to start the connector's emulator and point a client at it.
  Named by module path and imported only in sandbox mode (``hub demo``, tests,
  ``HUB_SANDBOX=1``), so production code never loads a sandbox or its credentials.
- :class:`ChatChannel` / :class:`CallbackSpec`: what a chat platform adds (how it names
  users, how a reminder becomes its message, its signed event callbacks).
- :class:`ConnectorSpec`: the registry entry tying them together (see ``hub.registry``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from canonical_model.records import UNREADABLE, CanonicalRecord, MappingError, RawRecord
from hub.calls import CallObserver
from hub.errors import ConfigError

# Canonical targets the engine knows how to upsert (see hub.engine.targets.HANDLERS).
TARGETS = ("customer", "contact", "internal_user", "sales_order", "receivable", "receipt", "task_completion")


class ConnectorSettings(BaseModel):
    """Base of every connector's settings section (``HUB_<SYSTEM>__<FIELD>``).

    Unknown fields are refused (a typo must not silently change behaviour). A real
    deployment must set ``base_url`` and every field named in ``REQUIRED``; in sandbox
    mode an unset ``base_url`` means "start the sandbox" instead. ``sync_cron`` is when
    the connector's inbound job runs (Dagster schedule, in the hub's timezone).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    REQUIRED: ClassVar[tuple[str, ...]] = ()

    base_url: str | None = Field(default=None, description="the system's API address")
    sync_cron: str = Field(default="*/15 * * * *", description="cron of the inbound job, in the hub's timezone")
    allow_http: bool = Field(default=False, description="accept a plain-http base_url outside sandbox mode "
                                                        "(only behind a trusted TLS-terminating proxy)")

    def transport_problem(self, system: str) -> str | None:
        """Why ``base_url`` may not be used outside sandbox mode (plain http, not explicitly
        allowed: credentials and personal data would cross the network in clear), or None.
        The rule for every connector; the runtime enforces it outside sandbox mode."""
        if self.allow_http:
            return None
        prefix = f"HUB_{system.upper()}__"
        for name in type(self).model_fields:  # base_url, and any other address (DingTalk's api_base_url)
            value = getattr(self, name)
            if name.endswith("base_url") and isinstance(value, str) and value.strip().lower().startswith("http://"):
                return (f"{prefix}{name.upper()} is plain http: use https, or set {prefix}ALLOW_HTTP=true if a "
                        "trusted proxy on this network adds TLS")
        return None

    def missing(self) -> list[str]:
        """The fields a real deployment still has to set (empty: complete)."""
        names = ("base_url", *self.REQUIRED)
        return [name for name in names if _blank(getattr(self, name))]

    def is_configured(self) -> bool:
        """True when any deployment field is set (an unused connector sets none)."""
        return any(not _blank(getattr(self, name)) for name in ("base_url", *self.REQUIRED))


def _blank(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return not value.get_secret_value()
    return value is None or value == ""


SettingsT = TypeVar("SettingsT", bound=ConnectorSettings)


class ConnectorClient(Protocol):
    """What the hub core needs of every connector client."""

    def check(self) -> None:
        """Reachability and credentials (``hub doctor``); raises ConnectorError."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


ClientT = TypeVar("ClientT", bound=ConnectorClient)


@dataclass(frozen=True)
class Page:
    """One page of raw records plus the cursor that is safe to store once it is committed.

    ``cursor_after`` is ``None`` when the stream has no cursor (full reads) or the page
    is empty; the engine then keeps the previous value.
    """

    records: list[RawRecord]
    cursor_after: str | None = None


@dataclass(frozen=True)
class StreamSpec(Generic[ClientT]):
    """One readable stream of a connector, described as data (dlt style)."""

    name: str  # e.g. "receivables"; the CLI and Dagster use "<system>/<name>"
    source_object: str  # vendor form/object id, e.g. "AR_receivable"
    target: str  # one of TARGETS
    key_field: str  # field of the raw record that identifies it (quarantine reference)
    cursor_field: str | None
    read_pages: Callable[[ClientT, str | None], Iterator[Page]]
    map_record: Callable[[RawRecord], CanonicalRecord]
    depends_on: tuple[str, ...] = ()  # streams to sync first (customers before orders)
    # Part of every record's content hash: bump it when the mapping changes, so that
    # records whose source did not change are still re-mapped once.
    mapping_version: str = "1"

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"stream {self.name}: unknown target {self.target!r}")


@dataclass(frozen=True)
class WriteResult:
    """What an external write produced: the external id and anything worth keeping.

    Also what a writer reports as *progress* of a multi-step write (``Attempt.progress``):
    then ``status`` is the step the external system has reached (a Kingdee order saved
    but not audited: ``"A"``).
    """

    external_id: str
    status: str | None = None
    adopted: bool = False  # True when the write was found on the system (an earlier attempt made it)
    detail: dict[str, Any] = field(default_factory=dict)


def ignore_progress(progress: WriteResult) -> None:
    """Default progress sink (a writer called outside the dispatcher: unit tests, scripts)."""


@dataclass(frozen=True)
class Attempt:
    """Where an outbox row stands when the dispatcher calls a writer.

    ``number`` starts at 1. ``outcome_unknown`` is True when an earlier attempt may have
    reached the external system (timeout, dropped response, 5xx after sending, a
    dispatcher that died holding the row), so the writer must not blindly re-apply: it
    looks the effect up first (once per attempt), or relies on the platform's own
    duplicate suppression while ``first_attempt_at`` is recent.

    ``progress(result)``: a multi-step writer calls it each time it knows a step the
    external system has reached (saved, submitted...), *before* trying the next step. If
    the attempt then fails, the dispatcher hands the last report to the effect handler in
    the transaction that reschedules or dead-letters the row, so the hub's rows say what
    the external system holds (``hub.outbox.effects``).
    """

    number: int
    first_attempt_at: dt.datetime
    outcome_unknown: bool = False
    progress: Callable[[WriteResult], None] = ignore_progress


class Writer(Protocol):
    """One kind of outbound effect (an ERP sales order, a chat reminder)."""

    system: str
    operation: str

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Perform the effect, adopting an earlier write when ``attempt.outcome_unknown``
        (one lookup). Raises a ``hub.errors.ConnectorError`` subclass on failure."""
        ...


@dataclass(frozen=True)
class RateWindow:
    """At most ``limit`` sends in any sliding window of ``seconds``."""

    seconds: float
    limit: int


@dataclass(frozen=True)
class SendBudget:
    """A per-recipient limit the platform enforces (WeCom: per app per member, excess
    silently dropped), spent in Postgres so that every dispatcher shares it.

    ``scope`` names whose budget it is (e.g. one WeCom app); ``recipient(payload)`` the
    recipient an outbox row spends it on. A send in flight counts as sent
    ``unsettled_s`` after it started until its reply settles it (a dispatcher that died
    mid-send leaves it so).
    """

    scope: str
    recipient: Callable[[Mapping[str, Any]], str]
    windows: tuple[RateWindow, ...]
    unsettled_s: float = 30.0


@dataclass(frozen=True)
class CallLimits:
    """How hard the outbox may drive one system, whatever number of dispatchers run.

    ``concurrency``: outbox writes in flight at once, across every dispatcher (a write may
    make several calls, one after the other); with ``per_call``, HTTP exchanges in flight
    instead, as the vendor counts requests (for connectors whose every call goes through
    ``connectors.kit.http.send``: a write holds a slot only while one of its calls is under
    way, not while the client writes the call's audit row or the writer works between
    calls; ``hub.outbox.slots``). ``budgets``: per writer name, the per-recipient send
    budget of that writer.
    """

    concurrency: int = 4
    budgets: Mapping[str, SendBudget] = field(default_factory=dict)
    per_call: bool = False


class RunningSandbox(Protocol):
    """A sandbox serving on a loopback port (``connectors.kit.sandbox.RunningServer``)."""

    url: str
    app: Any

    def stop(self) -> None:
        """Stop serving."""
        ...


@dataclass(frozen=True)
class SandboxSpec(Generic[SettingsT]):
    """A connector's emulator, as the runtime starts and uses it (sandbox mode only).

    ``create_app(**options)`` returns the ASGI app (options such as ``scale`` or
    ``seed``); ``serve(app)`` runs it on a free loopback port; ``client_settings(url,
    base)`` returns ``base`` pointed at a sandbox running at ``url``, with the sandbox's
    own credentials; ``demo_seed()`` (optional) returns the people and companies the
    sandbox knows, as the CRM demo data should hold them (``{"people": [...],
    "companies": [...]}``).
    """

    create_app: Callable[..., Any]
    serve: Callable[[Any], RunningSandbox]
    client_settings: Callable[[str, SettingsT], SettingsT]
    demo_seed: Callable[[], dict[str, list[dict[str, Any]]]] | None = None


@dataclass(frozen=True)
class ChatChannel(Generic[ClientT]):
    """What a chat platform adds: how it names people and how a reminder reaches them.

    ``label`` names the platform in messages to people; ``user_column`` is the ``internal_user`` column holding this platform's user id;
    ``prepare_reminder(payload)`` turns the channel-neutral reminder payload into the
    platform's message once, at enqueue time (retries resend identical bytes);
    ``account_by_mobile(client, mobile)`` finds a directory account by mobile, for
    directories that hide mobiles (linked before a directory sync); ``alias_column`` is the
    ``internal_user`` column caching a second id the platform gives a person (DingTalk's
    unionId, which its to-dos use): rules hand it to writers as ``recipient_alias`` and
    store what a writer resolved (``WriteResult.detail["recipient_alias"]``). A platform
    that holds to-dos has a ``todo`` writer (``hub.rules.todos``).
    """

    label: str  # how people name the platform in a sentence ("WeCom")
    user_column: str
    prepare_reminder: Callable[[dict[str, Any]], dict[str, Any]]
    account_by_mobile: Callable[[ClientT, str], str | None] | None = None
    alias_column: str | None = None


@dataclass(frozen=True)
class Salesperson:
    """A salesperson as an ERP keeps them (Kingdee ``BD_Saler``, YonBIP staff): ``ref`` is the
    ERP's own code, the value its customers' ``owner_ref`` holds; mobile and e-mail when the
    ERP has them. ``hub.rules.salespeople`` links them to internal users."""

    ref: str
    name: str
    mobile: str | None = None
    email: str | None = None
    active: bool = True
    employee_number: str | None = None  # 工号, the strongest link to an internal user


EventHandler = Callable[[dict[str, Any]], None]
RejectionHandler = Callable[[str, Mapping[str, str]], None]


class ReplayGuard(Protocol):
    """Remembers accepted callback requests, so that a replayed one is refused.

    ``first_time(fingerprint, at, expires_at)`` is True exactly once per fingerprint
    until ``expires_at`` (epoch seconds; the receiver passes the moment the request's
    timestamp goes stale, after which the timestamp check refuses it anyway); ``at`` is
    now on the receiver's clock. The hub's guard keeps them in Postgres, so every web
    process and every restart sees them. ``forget(fingerprint)`` lets the platform's
    own retry through when handling the first delivery failed. Both block (database).
    """

    def first_time(self, fingerprint: str, at: float, expires_at: float) -> bool:
        """Record ``fingerprint`` until ``expires_at``; False when it is already recorded."""
        ...

    def forget(self, fingerprint: str) -> None:
        """Drop ``fingerprint`` (its handling failed)."""
        ...


@dataclass(frozen=True)
class CallbackHooks:
    """What the hub gives a connector's callback receiver."""

    on_event: EventHandler
    on_rejected: RejectionHandler
    replay_guard: ReplayGuard


@dataclass(frozen=True)
class CallbackSpec(Generic[SettingsT]):
    """A platform's signed event callbacks, served by ``hub serve`` at ``/callbacks/<system>``.

    ``make_receiver(settings, hooks, path)`` returns the ASGI receiver, or None when the
    callback credentials are not configured.
    """

    make_receiver: Callable[[SettingsT, CallbackHooks, str], Any | None]


WriterFactory = Callable[[ClientT, SettingsT], Writer]


@dataclass(frozen=True)
class ConnectorSpec(Generic[SettingsT, ClientT]):
    """Registry entry for one external system (see ``hub.registry``).

    ``make_client(settings, observer)`` builds the client from the connector's settings
    section (the observer audits every call); ``writers`` maps a writer name to its
    factory, the outbox kind being ``"<system>.<name>"``; ``sandbox`` is the module path
    of a module exposing ``SANDBOX: SandboxSpec``; ``limits(settings)`` declares the
    system's :class:`CallLimits` (from the vendor's documented limits, or guesses the
    connector marks as such).
    """

    system: str
    title: str
    settings_model: type[SettingsT]
    make_client: Callable[[SettingsT, CallObserver], ClientT]
    streams: tuple[StreamSpec[ClientT], ...] = ()
    writers: Mapping[str, WriterFactory[ClientT, SettingsT]] = field(default_factory=dict)
    sandbox: str | None = None
    chat: ChatChannel[ClientT] | None = None
    callbacks: CallbackSpec[SettingsT] | None = None
    limits: Callable[[SettingsT], CallLimits] | None = None  # None: CallLimits() defaults
    # an ERP's own salespeople (whose codes its customers carry as owners), for linking to users
    salespeople: Callable[[ClientT], Iterable[Salesperson]] | None = None
    # for a system without streams: how its data reaches the hub instead (`hub sync` says so)
    inbound_note: str | None = None

    @property
    def writer_kinds(self) -> tuple[str, ...]:
        """The outbox kinds this connector writes, ``"<system>.<writer>"``."""
        return tuple(f"{self.system}.{name}" for name in self.writers)

    def stream(self, name: str) -> StreamSpec[ClientT]:
        """Look a stream up by name, with a clear error listing the known ones."""
        for spec in self.streams:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.streams) or "none"
        raise ConfigError(f"{self.system} has no stream {name!r} (known: {known})")

    def writer(self, kind: str) -> WriterFactory[ClientT, SettingsT]:
        """The writer factory of an outbox kind of this connector."""
        system, _, name = kind.partition(".")
        if system != self.system or name not in self.writers:
            known = ", ".join(self.writer_kinds) or "none"
            raise ConfigError(f"{self.system} has no writer for outbox kind {kind!r} (known: {known})")
        return self.writers[name]


__all__ = [
    "TARGETS",
    "UNREADABLE",
    "Attempt",
    "CallLimits",
    "CallbackHooks",
    "CallbackSpec",
    "ChatChannel",
    "ConnectorClient",
    "ConnectorSettings",
    "ConnectorSpec",
    "MappingError",
    "Page",
    "RateWindow",
    "RawRecord",
    "ReplayGuard",
    "RunningSandbox",
    "Salesperson",
    "SandboxSpec",
    "SendBudget",
    "StreamSpec",
    "WriteResult",
    "Writer",
    "WriterFactory",
    "ignore_progress",
]
