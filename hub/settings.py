"""Hub configuration: environment variables ``HUB_*`` and an optional ``hub.toml``.

Precedence (highest first): explicit keyword arguments, environment variables, the
TOML file named by ``HUB_CONFIG_FILE`` (default ``./hub.toml`` when present), defaults.

- **One section per connector**, owned by the connector (``connectors/<system>/settings.py``,
  a :class:`hub.contracts.ConnectorSettings`): ``HUB_KINGDEE__BASE_URL`` or ``[kingdee]``
  in the file. :meth:`Settings.connector` returns it, typed by the connector's model.
- **Strict**: an unknown ``HUB_`` variable, file key or connector field is a
  :class:`~hub.errors.ConfigError` naming the closest known one, and a value of the wrong
  type is a one-line ConfigError naming the variable: a typo must not silently change
  behaviour.
- **Secrets** (every ``SecretStr`` field: app secrets, the database URL) are read from the
  environment only: a secret found in the TOML file is refused, because files get committed.
- **Sandbox mode is explicit**: only with ``sandbox`` on (``HUB_SANDBOX=1``, ``hub demo``,
  the tests) does a connector without a ``base_url`` talk to its in-process sandbox;
  otherwise it is a configuration error naming the missing variables.

With no ``database_url`` the hub runs on an embedded Postgres under ``HUB_HOME``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.contracts import ConnectorSettings
from hub.errors import ConfigError

if typing.TYPE_CHECKING:
    from hub.survivorship import Precedence

ENV_PREFIX = "HUB_"
# HUB_ variables that are not settings: read by tooling around the hub, never by Settings.
PROCESS_VARIABLES = frozenset({
    "HUB_CONFIG_FILE", "HUB_TEST_DATABASE_URL", "HUB_TEST_HOME", "HUB_DAGSTER_STORAGE_URL",
})

ConnectorSettingsT = TypeVar("ConnectorSettingsT", bound=ConnectorSettings)


def default_home() -> Path:
    """Where the hub keeps its embedded database and Dagster home by default."""
    return Path(platformdirs.user_data_dir("crm-erp-hub", appauthor=False))


class OutboxSettings(BaseModel):
    """How the dispatcher retries, leases rows and spreads work (``HUB_OUTBOX__*``).

    Transient failures (5xx, timeouts, busy, rate limits, lost replies, a refused fresh
    token) are retried for ``retry_budget_s`` from a row's first attempt, with capped
    exponential backoff and jitter (a platform's ``retry_after`` is honoured), then the
    row is dead-lettered. ``max_attempts`` bounds only what no retry can be expected to
    cure: unexpected exceptions (bugs) and attempts lost with their dispatcher (lease
    expired). ``max_attempts`` is stamped on each row when it is enqueued.
    """

    model_config = {"extra": "forbid"}

    max_attempts: int = Field(default=6, ge=1, le=50,
                              description="attempts before an effect failing by a bug (not the platform) is dead-lettered")
    retry_budget_s: float = Field(default=24 * 3600.0, gt=0,
                                  description="seconds transient failures are retried before a dead letter")
    backoff_initial_s: float = Field(default=2.0, ge=0, description="first retry delay, seconds (doubles, with jitter)")
    backoff_max_s: float = Field(default=300.0, ge=0, description="longest retry delay, seconds")
    # A claimed row is retaken this long after its dispatcher stopped renewing the lease;
    # a live dispatcher renews every lease_s / 3 while the call runs (at most max_call_s).
    lease_s: float = Field(default=10.0, ge=0.5,
                           description="seconds a claimed row is retaken after its dispatcher stops renewing it")
    max_call_s: float = Field(default=600.0, gt=0, description="longest a write may hold its row")
    workers: int = Field(default=8, ge=1, le=64, description="writes in flight per dispatcher (all systems)")


class OrderSettings(BaseModel):
    """Which ERP an approved CRM order goes to (``HUB_ORDERS__*``): a tenant's ERP, or one ERP
    per legal entity (sales organisation) for a group company running several.

    An order whose legal entity is listed in ``erp_by_entity`` goes to that ERP. When the list
    is empty (one ERP for the whole tenant) or the order names no legal entity, it goes to
    ``erp``. A legal entity missing from a non-empty list, or no ``erp`` where one is needed,
    is a failure shown on the order (``hub.rules.orders.route_order``), never a silent default.
    """

    model_config = {"extra": "forbid"}

    erp: str | None = Field(default="kingdee", description="the tenant's ERP (orders without an entity of their own)")
    erp_by_entity: dict[str, str] = Field(default_factory=dict,
                                          description='legal entity → ERP, JSON: {"XH-SZ": "kingdee"}')

    @model_validator(mode="after")
    def _known_erps(self) -> OrderSettings:
        from hub.registry import systems, writer_kinds

        erps = sorted(kind.partition(".")[0] for kind in writer_kinds() if kind.endswith(".sales_order"))
        for where, erp in [("erp", self.erp), *((f"erp_by_entity[{k}]", v) for k, v in self.erp_by_entity.items())]:
            if erp is not None and erp not in erps:
                what = "an ERP the hub can push orders to" if erp in systems() else "a registered system"
                raise ValueError(f"{where}: {erp!r} is not {what} (known ERPs: {', '.join(erps)})")
        return self


class ReminderSettings(BaseModel):
    """When reminders fire (the thresholds are also stored as rule data), and where.

    ``channel_preference``: the chat platforms in order of preference. Each person is
    reminded on one platform only: the first in this order whose directory lists them as
    an active member (a company moving from WeCom to DingTalk region by region lists
    ``dingtalk,wecom``). Empty: every registered chat platform, by name.
    """

    model_config = {"extra": "forbid"}

    uncontacted_hours: int = Field(default=24, ge=1,
                                   description="hours after assignment without follow-up before 超时未跟进")
    channel_preference: str = Field(default="", pattern=r"^\s*([a-z][a-z0-9_]*\s*(,\s*[a-z][a-z0-9_]*\s*)*)?$",
                                    description="chat platforms in order of preference, e.g. 'dingtalk,wecom' "
                                                "(a person gets reminders on the first whose directory lists them)")

    def channels(self) -> tuple[str, ...]:
        """``channel_preference`` as a tuple of system names (empty: every chat platform)."""
        return tuple(dict.fromkeys(part.strip() for part in self.channel_preference.split(",") if part.strip()))


class ScheduleSettings(BaseModel):
    """Cadences (cron, in the hub's timezone) of the jobs that belong to no one connector;
    each connector's inbound cadence is its own ``sync_cron``."""

    model_config = {"extra": "forbid"}

    receivables: str = Field(default="5 * * * *", description="cron of receivables_to_crm (collection tasks)")
    reminders: str = Field(default="*/5 * * * *", description="cron of todo_pushes (reminders to chat)")
    leads: str = Field(default="17 * * * *", description="cron of leads_to_pool (unworked leads back to the pool)")


# How settings name an internal user (hub.rules.people.resolve_user_ref): ``id:42`` (the hub's
# id), ``employee:E0012`` (工号), or ``<chat platform>:<userid>`` (``wecom:zhangsan``).
USER_REF_PATTERN = r"^[a-z][a-z0-9_]*:\S.{0,199}$"
_USER_REFS_PATTERN = r"^\s*([a-z][a-z0-9_]*:[^,\s][^,]*(\s*,\s*[a-z][a-z0-9_]*:[^,\s][^,]*)*)?\s*$"


def split_refs(text: str) -> tuple[str, ...]:
    """A comma-separated list of user refs as a tuple (blanks dropped, order kept)."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


class CollectionSettings(BaseModel):
    """Who chases money nobody owns (``HUB_COLLECTIONS__*``).

    A customer without an owner sits in the public pool (公海池); its overdue receivables
    become 催收 tasks for a finance recipient instead (spread over the list by customer),
    and a customer no one can be given is counted and reported, never skipped silently.
    """

    model_config = {"extra": "forbid"}

    finance_recipients: str = Field(
        default="", pattern=_USER_REFS_PATTERN,
        description="finance people who get the 催收 tasks of customers without an owner, comma-separated "
                    "user refs: id:42, employee:E0012, wecom:<userid>, dingtalk:<userid>")

    def recipients(self) -> tuple[str, ...]:
        """``finance_recipients`` as a tuple of user refs."""
        return split_refs(self.finance_recipients)


class LeadRule(BaseModel):
    """One row of the lead assignment table: a lead matching every condition given goes to
    ``owner``, or round-robin to the active members of ``team`` (a manager's reports) or
    ``department``. Empty conditions match anything; the first matching rule wins."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\s].*$",
                      description="the rule's name, recorded on each lead it assigns")
    regions: list[str] = Field(default_factory=list, description="match when the lead's region contains one of these")
    industries: list[str] = Field(default_factory=list,
                                  description="match when the lead's industry contains one of these")
    min_amount: Decimal | None = Field(default=None, ge=0, description="estimated amount at least this")
    max_amount: Decimal | None = Field(default=None, ge=0, description="estimated amount below this")
    owner: str | None = Field(default=None, pattern=USER_REF_PATTERN, description="user ref of the owner")
    team: str | None = Field(default=None, pattern=USER_REF_PATTERN,
                             description="user ref of a manager: round-robin among the people reporting to them")
    department: str | None = Field(default=None, min_length=1, max_length=200,
                                   description="department name: round-robin among its active members")

    @model_validator(mode="after")
    def _one_target(self) -> LeadRule:
        targets = [n for n in ("owner", "team", "department") if getattr(self, n)]
        if len(targets) != 1:
            raise ValueError("give exactly one of owner, team or department"
                             + (f" (got {', '.join(targets)})" if targets else ""))
        if self.min_amount is not None and self.max_amount is not None and self.min_amount >= self.max_amount:
            raise ValueError(f"min_amount {self.min_amount} must be below max_amount {self.max_amount}")
        return self


class LeadSettings(BaseModel):
    """How leads are taken in and handed out (``HUB_LEADS__*``, or ``[[leads.rules]]`` in hub.toml).

    ``rules`` is the assignment table (:class:`LeadRule`; first match wins, no match: the
    public pool). ``form_keys`` authorises the public web form per form (``site=KEY,expo=KEY``;
    a secret: environment only).
    """

    model_config = {"extra": "forbid"}

    rules: list[LeadRule] = Field(default_factory=list,
                                  description="assignment rules as JSON: [{name, regions, industries, min_amount, "
                                              "max_amount, owner|team|department}]; first match wins")
    first_followup_days: float = Field(default=3.0, gt=0, le=365,
                                       description="days the owner has for the first follow-up of a new lead")
    return_to_pool_days: float = Field(default=7.0, gt=0, le=3650,
                                       description="days without follow-up after which an assigned lead returns "
                                                   "to the public pool")
    form_keys: SecretStr | None = Field(default=None, description="web form keys, 'form=key,form2=key2'")
    form_max_bytes: int = Field(default=8192, ge=256, le=1_000_000, description="largest web form body accepted")
    form_rate_per_minute: int = Field(default=10, ge=1, le=10_000,
                                      description="web form posts accepted per client address per minute")

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_named_in_errors(cls, value: Any) -> Any:
        # pydantic would say "rules.2.owner"; people name rules by their name
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("expected a JSON list of rules") from None
        if not isinstance(value, list):
            raise ValueError("expected a list of rules")
        names: set[str] = set()
        for index, rule in enumerate(value, 1):
            label = f"rule {index}" + (f" ({rule.get('name')!r})" if isinstance(rule, dict) and rule.get("name")
                                       else "")
            try:
                parsed = rule if isinstance(rule, LeadRule) else LeadRule.model_validate(rule)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"]) or "rule"
                raise ValueError(f"{label}: {where}: {err['msg'].removeprefix('Value error, ')}") from None
            if parsed.name in names:
                raise ValueError(f"{label}: name: another rule is named {parsed.name!r}")
            names.add(parsed.name)
        return value

    def form_key_map(self) -> dict[str, str]:
        """``form_keys`` as {form name: key}; a malformed entry is a ConfigError naming its position."""
        if self.form_keys is None:
            return {}
        found: dict[str, str] = {}
        for index, part in enumerate(self.form_keys.get_secret_value().split(","), 1):
            name, sep, key = part.strip().partition("=")
            if not part.strip():
                continue
            if not sep or not name.strip() or len(key.strip()) < 16:
                raise ConfigError(f"HUB_LEADS__FORM_KEYS: entry {index} must be form=key with a key of at least "
                                  "16 characters")
            found[name.strip()] = key.strip()
        return found


class DagsterSettings(BaseModel):
    """Where `hub ui` keeps Dagster's run, event and schedule storage, and its manners."""

    model_config = {"extra": "forbid"}

    database: str = Field(default="dagster", pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$",
                          description="database on the hub's Postgres server for Dagster's storage")
    telemetry: bool = Field(default=False, description="send Dagster's anonymous usage telemetry")
    ui_url: str = Field(default="http://127.0.0.1:3000", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
                        max_length=500, description="base URL of the Dagster UI the operations page links to")
    executor: Literal["in_process", "multiprocess"] = Field(
        default="in_process",
        description="how a run executes its steps: in_process (one after another, one process, one set of "
                    "clients) or multiprocess (steps that do not depend on each other, such as an ERP's orders, "
                    "receivables and receipts, at once, each in its own process)")
    max_concurrent_steps: int = Field(default=4, ge=1, le=64,
                                      description="multiprocess: steps of one run at once (each system's steps "
                                                  "also stay within its connector's concurrency)")


class ApiSettings(BaseModel):
    """Limits of the CRM's JSON API (``HUB_API__*``, :mod:`hub.web.crm_api`)."""

    model_config = {"extra": "forbid"}

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                description="largest request body accepted, bytes; a bigger one is refused "
                                            "with 413 before it is parsed")


class VaultSettings(BaseModel):
    """Keys of the personal data encrypted at rest (``HUB_VAULT__*``, :mod:`hub.vault`).

    ``keys``: ``<key id>:<base64 of 32 bytes>`` entries, comma-separated, the first current;
    ``index_key``: the blind index key. Both from the environment only. Unset in sandbox
    mode: generated into ``HUB_HOME/vault-keys.json`` (0600).
    """

    model_config = {"extra": "forbid"}

    keys: SecretStr | None = Field(default=None, description="encryption keys 'kid:base64,…', the first current "
                                                               "(`hub keys generate`)")
    index_key: SecretStr | None = Field(default=None, description="blind index key (base64, 32 bytes): keyed hashes "
                                                                  "of mobiles and e-mails for exact matching")
    batch_rows: int = Field(default=500, ge=1, le=100_000,
                            description="rows re-encrypted per transaction by `hub keys rotate`")


class WebSettings(BaseModel):
    """Sign-in, sessions and TLS of `hub serve` (``HUB_WEB__*``).

    With ``certfile`` and ``keyfile`` set, `hub serve` speaks HTTPS itself; without them
    it speaks HTTP and belongs behind a reverse proxy that terminates TLS (README:
    "HTTPS"). ``trusted_proxies`` are the addresses whose X-Forwarded-For/-Proto headers
    are believed (the proxy's); nobody else's are.
    """

    model_config = {"extra": "forbid"}

    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="how long a browser stays signed in")
    login_max_failures: int = Field(default=5, ge=1, le=100,
                                    description="wrong passwords in a row that lock a login")
    login_lock_minutes: float = Field(default=15.0, gt=0, le=24 * 60,
                                      description="how long a locked login stays locked")
    certfile: Path | None = Field(default=None, description="TLS certificate chain (PEM) `hub serve` presents")
    keyfile: Path | None = Field(default=None, description="TLS private key (PEM) of certfile")
    trusted_proxies: str = Field(default="127.0.0.1",
                                 description="comma-separated addresses whose X-Forwarded-* headers are trusted")
    language: Literal["zh", "en"] = Field(default="zh", description="language of the report pages' labels")


class RulesSettings(BaseModel):
    """Where the automation rules come from (``HUB_RULES__*``, :mod:`hub.rules.automation`).

    ``file`` unset: the rules shipped with the hub (``hub/rules/automation/defaults.toml``).
    Set: the tenant's own TOML file. A file that is missing is an error here; one that does
    not validate is an error when the hub starts (every `hub` command, the Dagster asset),
    never a silent fallback to the defaults.
    """

    model_config = {"extra": "forbid"}

    file: Path | None = Field(default=None, description="the tenant's automation rules (TOML); unset: the "
                                                        "shipped defaults (`hub rules check FILE` validates one)")

    @field_validator("file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"{value} is not a readable file (the automation rules; unset it for the defaults)")
        return value.expanduser() if value is not None else None
class SalesReportSettings(BaseModel):
    """The sales report pages (``HUB_SALES_REPORTS__*``): when a funnel stage's dwell is
    "unusually long", and the RFM window and thresholds (unset thresholds: the medians of
    the customers shown)."""

    model_config = {"extra": "forbid"}

    dwell_flag_factor: float = Field(default=1.5, gt=1, le=100,
                                     description="a funnel stage is flagged when its average dwell exceeds this "
                                                 "times the median of the stages' average dwells")
    funnel_days: int = Field(default=90, ge=1, le=3660, description="default funnel period: the last N days")
    rfm_months: int = Field(default=12, ge=1, le=120,
                            description="RFM window: orders (frequency) and receipts (monetary) of the last N months")
    rfm_recency_days: int | None = Field(default=None, ge=0, description="RFM: recent when the last ERP order is at "
                                                                          "most this many days ago (unset: median)")
    rfm_frequency: int | None = Field(default=None, ge=0, description="RFM: frequent from this many ERP orders in "
                                                                       "the window (unset: median)")
    rfm_monetary: Decimal | None = Field(default=None, ge=0, description="RFM: high value from this much received "
                                                                          "in the window (unset: median)")


class ApprovalSettings(BaseModel):
    """OA approvals of CRM orders (``HUB_APPROVALS__*``): how the hub learns their outcome.

    Which template an approval is opened from is each platform's own setting, next to its
    credentials: ``HUB_DINGTALK__APPROVAL_PROCESS_CODE`` / ``HUB_DINGTALK__APPROVAL_KEY_CONTROL``
    and ``HUB_WECOM__APPROVAL_TEMPLATE_ID`` / ``HUB_WECOM__APPROVAL_KEY_CONTROL`` (the writer that
    opens them reads its connector's section). Callbacks bring outcomes at once; the reconcile
    poll (job ``approvals_reconcile``) is the fallback when one is lost.
    """

    model_config = {"extra": "forbid"}

    reconcile_cron: str = Field(default="*/10 * * * *",
                                description="cron of approvals_reconcile (the poll over open OA approvals)")
    recheck_minutes: float = Field(default=10.0, gt=0, le=24 * 60,
                                   description="an open approval is re-read when it was not read for this long")
    revoke_watch_days: float = Field(default=30.0, ge=0, le=3650,
                                     description="days an approved order is still polled for a revocation")


class SurvivorshipSettings(BaseModel):
    """Which source's value a golden customer shows when several records resolve to it
    (``HUB_SURVIVORSHIP__*``; the rules: ``hub.survivorship``).

    Systems in order of precedence, highest first, comma-separated; ``=`` puts systems on one
    rank (then the record changed most recently at its source wins). ``hub`` names values a
    person set in the hub (pool claims). Systems not named rank last. An unknown system or
    field is a configuration error.
    """

    model_config = {"extra": "forbid"}

    precedence: str = Field(default="crm,hub,kingdee,yonyou",
                            description="golden customer fields: systems in order of precedence, e.g. "
                                        "'crm,hub,kingdee=yonyou' (= shares a rank: the latest change at its "
                                        "source wins)")
    field_precedence: dict[str, str] = Field(
        default_factory=lambda: {"credit_limit": "kingdee,yonyou,crm,hub", "currency": "kingdee,yonyou,crm,hub"},
        description='per field, overriding precedence, JSON: {"owner_id": "crm,hub"}; unset: '
                    '{"credit_limit": "kingdee,yonyou,crm,hub", "currency": "kingdee,yonyou,crm,hub"}')

    @field_validator("precedence")
    @classmethod
    def _known_systems(cls, value: str) -> str:
        from hub.survivorship import parse_ranks

        parse_ranks(value, _survivorship_systems())
        return value

    @field_validator("field_precedence")
    @classmethod
    def _known_fields_and_systems(cls, value: dict[str, str]) -> dict[str, str]:
        from hub.survivorship import Precedence

        Precedence.parse(by_field=value, known=_survivorship_systems())
        return value

    def rules(self) -> Precedence:
        """The parsed :class:`hub.survivorship.Precedence`."""
        from hub.survivorship import Precedence

        return Precedence.parse(self.precedence, self.field_precedence, known=_survivorship_systems())


def _survivorship_systems() -> list[str]:
    """The names a survivorship precedence may use: registered systems, and ``hub`` (people)."""
    from hub.registry import systems
    from hub.survivorship import MANUAL

    return [*systems(), MANUAL]


class Settings(BaseSettings):
    """All hub settings. Build with ``Settings()``; see the module docstring."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True,
    )

    home: Path = Field(default_factory=default_home,
                       description="embedded Postgres, Dagster home (default: the user data directory)")
    database_url: SecretStr | None = Field(default=None, description="Postgres server URL; unset: embedded Postgres")
    database_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
                                 description="schema the hub's tables live in")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    timezone: str = Field(default="Asia/Shanghai", description="business timezone: due dates, aging, schedules")
    public_url: str = Field(default="http://127.0.0.1:8000",
                            description="where people reach `hub serve`; reminder cards link here")
    sandbox: bool = Field(default=False, description="connectors without a base URL use their built-in sandbox")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    orders: OrderSettings = Field(default_factory=OrderSettings)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    collections: CollectionSettings = Field(default_factory=CollectionSettings)
    leads: LeadSettings = Field(default_factory=LeadSettings)
    dagster: DagsterSettings = Field(default_factory=DagsterSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    vault: VaultSettings = Field(default_factory=VaultSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    sales_reports: SalesReportSettings = Field(default_factory=SalesReportSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    survivorship: SurvivorshipSettings = Field(default_factory=SurvivorshipSettings)
    # One section per registered connector, each validated by the connector's own model.
    connectors: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r} (DEBUG, INFO, WARNING or ERROR)")
        return level

    @model_validator(mode="after")
    def _validate_connector_sections(self) -> Settings:
        from hub.registry import connector, systems

        known = systems()
        unknown = sorted(set(self.connectors) - set(known))
        if unknown:
            raise ConfigError(f"unknown connector section {unknown[0]!r}{_did_you_mean(unknown[0], known)}")
        sections: dict[str, ConnectorSettings] = {}
        for system in known:
            model = connector(system).settings_model
            value = self.connectors.get(system)
            try:
                sections[system] = value if isinstance(value, model) else model.model_validate(value or {})
            except ValidationError as exc:
                raise ConfigError(describe_validation_error(exc, prefix=f"{system}__")) from None
        self.__dict__["connectors"] = sections
        return self

    @typing.overload
    def connector(self, system: str) -> ConnectorSettings: ...

    @typing.overload
    def connector(self, system: str, model: type[ConnectorSettingsT]) -> ConnectorSettingsT: ...

    def connector(self, system: str, model: type[ConnectorSettings] | None = None) -> ConnectorSettings:
        """The settings section of ``system`` (checked to be a ``model`` when given)."""
        try:
            section = self.connectors[system]
        except KeyError:
            raise ConfigError(f"no connector {system!r} is registered") from None
        if model is not None and not isinstance(section, model):
            raise ConfigError(f"settings of {system} are not a {model.__name__}")
        return cast(ConnectorSettings, section)

    def with_connector(self, system: str, **changes: Any) -> Settings:
        """A copy with fields of one connector section changed (validated)."""
        section: ConnectorSettings = self.connector(system)
        updated = type(section).model_validate({**section.model_dump(), **changes})
        return self.model_copy(update={"connectors": {**self.connectors, system: updated}})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_environment(os.environ)
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, env_settings, ConnectorEnvironment(settings_cls, os.environ)]
        toml_file = config_file()
        if toml_file is not None:
            sources.append(TomlFile(settings_cls, toml_file))
        return tuple(sources)


# ---------------------------------------------------------------------------------------------
# Sources: connector sections from the environment and from the TOML file


class ConnectorEnvironment(PydanticBaseSettingsSource):
    """``HUB_<SYSTEM>__<FIELD>`` (nested with ``__``) into ``connectors[<system>]``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: typing.Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        from hub.registry import systems

        sections: dict[str, dict[str, Any]] = {}
        prefixes = {f"{ENV_PREFIX}{s.upper()}__": s for s in systems()}
        for name, value in self._environ.items():
            upper = name.upper()
            for prefix, system in prefixes.items():
                if upper.startswith(prefix):
                    node = sections.setdefault(system, {})
                    *parents, leaf = upper[len(prefix):].lower().split("__")
                    for part in parents:
                        node = node.setdefault(part, {})
                    node[leaf] = value
        return {"connectors": sections} if sections else {}


class TomlFile(PydanticBaseSettingsSource):
    """``hub.toml``: core keys as they are, ``[<system>]`` tables into ``connectors``.

    Refuses secrets (every ``SecretStr`` field) and unknown tables with a ConfigError.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path
        with path.open("rb") as handle:
            try:
                self.data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML ({exc})") from None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        from hub.registry import systems

        known = setting_paths()
        core: dict[str, Any] = {}
        sections: dict[str, Any] = {}
        for key, value in self.data.items():
            if key in systems():
                sections[key] = value
            else:
                core[key] = value
        for trail in _leaf_paths(self.data, known):
            env_name = ENV_PREFIX + "__".join(trail).upper()
            if env_name not in known:
                raise ConfigError(f"{self.path}: unknown setting {'.'.join(trail)!r}"
                                  f"{_did_you_mean(env_name, known, as_file=True)}")
            if known[env_name]:
                raise ConfigError(f"{self.path}: '{'.'.join(trail)}' is a secret; set it in the environment "
                                  f"({env_name}) instead of the file")
        return {**core, "connectors": sections} if sections else core


def _leaf_paths(node: Any, known: typing.Mapping[str, bool], trail: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The settings a TOML table sets; a table that is the value of one setting (a mapping such
    as ``orders.erp_by_entity``) is that one setting, not settings of its own."""
    if isinstance(node, dict) and node and ENV_PREFIX + "__".join(trail).upper() not in known:
        return [path for key, value in node.items() for path in _leaf_paths(value, known, (*trail, str(key)))]
    return [trail] if trail else []


def config_file() -> Path | None:
    """The TOML file in effect: ``HUB_CONFIG_FILE`` (must exist), else ``./hub.toml`` if present."""
    named = os.environ.get("HUB_CONFIG_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"HUB_CONFIG_FILE points to {path}, which does not exist")
        return path
    local = Path("hub.toml")
    return local if local.is_file() else None


# ---------------------------------------------------------------------------------------------
# Strictness: every known variable, and a clear word for the unknown ones


def setting_paths() -> dict[str, bool]:
    """Every settable ``HUB_…`` variable name, mapped to whether it is a secret."""
    from hub.registry import connector, systems

    paths: dict[str, bool] = {}
    _collect(Settings, ENV_PREFIX, paths, skip={"connectors"})
    for system in systems():
        _collect(connector(system).settings_model, f"{ENV_PREFIX}{system.upper()}__", paths)
    return paths


def _collect(model: type[BaseModel], prefix: str, into: dict[str, bool], skip: set[str] | None = None) -> None:
    for name, info in model.model_fields.items():
        if skip and name in skip:
            continue
        annotation = unwrap_optional(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _collect(annotation, f"{prefix}{name.upper()}__", into)
        else:
            into[f"{prefix}{name.upper()}"] = annotation is SecretStr


def unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``X | None`` (and ``Optional[X]``); anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def check_environment(environ: typing.Mapping[str, str]) -> None:
    """Refuse an unknown ``HUB_`` variable, naming the closest known one."""
    names = [n for n in environ if n.upper().startswith(ENV_PREFIX) and n.upper() not in PROCESS_VARIABLES]
    if not names:
        return
    known = setting_paths()
    for name in sorted(names):
        if name.upper() not in known:
            raise ConfigError(f"unknown setting {name}{_did_you_mean(name.upper(), known)}")


def _did_you_mean(name: str, known: typing.Iterable[str], *, as_file: bool = False) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    if not close:
        return ""
    suggestion = close[0]
    if as_file and suggestion.startswith(ENV_PREFIX):
        suggestion = suggestion[len(ENV_PREFIX):].lower().replace("__", ".")
    return f"; did you mean {suggestion}?"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line for a settings validation error, naming the variable and the problem."""
    err = exc.errors(include_url=False)[0]
    # an error of a whole section (a model validator, no field) names the section: HUB_CRM
    path = (prefix + "__".join(str(p) for p in err["loc"] if p != "connectors")).removesuffix("__")
    shown = err.get("input")
    secret = any(word in path.lower() for word in ("secret", "password", "token", "key", "url"))
    value = "" if secret or isinstance(shown, dict | list) or shown is None else f" (got {str(shown)[:60]!r})"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{ENV_PREFIX}{path.upper()}: {err['msg']}{value}{more}"


__all__ = [
    "ENV_PREFIX",
    "CollectionSettings",
    "DagsterSettings",
    "LeadRule",
    "LeadSettings",
    "OrderSettings",
    "OutboxSettings",
    "ReminderSettings",
    "RulesSettings",
    "ScheduleSettings",
    "Settings",
    "VaultSettings",
    "check_environment",
    "config_file",
    "default_home",
    "setting_paths",
    "unwrap_optional",
]
