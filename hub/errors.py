"""Every exception the hub raises, in one tree.

The sync engine and the outbox dispatcher decide what to do with a failure from its
class alone, so connectors must translate every vendor error into one of these::

    HubError                         anything the hub raises on purpose
    ├── ConfigError                  settings missing or wrong (fix config, never retried)
    ├── SchemaNotCurrentError        database schema behind the code: run `hub db upgrade`
    ├── NotFoundError                a CLI/API lookup found nothing (customer, DLQ row...)
    ├── VaultError                   a sealed personal value does not open: tampered, moved to
    │                                another column, or sealed with a key the hub lacks
    ├── MappingBugError              a mapping raised something other than MappingError or a
    │                                validation error: a bug, not bad data (the run fails, the
    │                                page stays uncommitted)
    └── ConnectorError               a call to an external system failed; carries context
        ├── RetryableError           network error, timeout, HTTP 5xx, "system busy"
        │   └── RateLimitedError     the platform said "slow down"; wait `retry_after` s
        ├── AuthExpiredError         token/session expired: refresh once, then retry
        └── PermanentError           bad data or refused request: never retried
            ├── RecipientError       chat recipients unknown to the platform (per user)
            └── SignInCodeError      a sign-in code (WeCom OAuth, DingTalk 免登) was refused:
                                     invalid, used, expired or another app's

Every ``ConnectorError`` names the system, the operation and, when known, the external
id it concerned, so a log line or a dead-letter row says what went wrong where.  The
message must never contain a secret: clients build it from error codes and vendor
messages, not from requests.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises deliberately."""


class ConfigError(HubError):
    """Configuration is missing or invalid; the operator must fix settings."""


class SchemaNotCurrentError(HubError):
    """The database schema is not at the head migration."""


class NotFoundError(HubError):
    """A requested object (customer, dead letter, quarantine row) does not exist."""


class VaultError(HubError):
    """A sealed value cannot be opened (``hub.vault``). The message names the table,
    column and key id, never the value or a key."""


class MappingBugError(HubError):
    """A mapping failed in a way bad data must not cause (TypeError, KeyError, …).

    Mappings turn every malformed input into a ``MappingError``; anything else is a bug,
    and quarantining would make every record look bad. The message names the stream,
    the record's position and source reference, the exception type and where it was
    raised, never the record's values (an exception's own text may quote them).
    """


class ConnectorError(HubError):
    """A call to an external system failed.

    ``code`` is the vendor's own error code (errcode, MsgCode, HTTP status) as text,
    ``external_id`` the record the call concerned, when there is one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        system: str,
        operation: str,
        external_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.system = system
        self.operation = operation
        self.external_id = external_id
        self.code = code
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.system}.{self.operation}"
        if self.external_id:
            where += f"[{self.external_id}]"
        code = f" (code {self.code})" if self.code else ""
        return f"{where}: {self.message}{code}"

    def __reduce__(self):  # keep context when pickled across processes (Dagster, multiprocessing)
        return (
            _rebuild_connector_error,
            (type(self), self.message, self.system, self.operation, self.external_id, self.code),
            self.__dict__,
        )


def _rebuild_connector_error(cls, message, system, operation, external_id, code):
    return cls(message, system=system, operation=operation, external_id=external_id, code=code)


class RetryableError(ConnectorError):
    """Transient failure (network, timeout, 5xx, busy): retry with backoff."""

    retryable = True


class RateLimitedError(RetryableError):
    """The platform throttled us; wait ``retry_after`` seconds before the next attempt."""

    def __init__(self, message: str, *, retry_after: float, **context: str | None) -> None:
        self.retry_after = retry_after
        super().__init__(message, **context)  # type: ignore[arg-type]

    def __reduce__(self):
        return (
            _rebuild_rate_limited,
            (self.message, self.retry_after, self.system, self.operation, self.external_id, self.code),
            self.__dict__,
        )


def _rebuild_rate_limited(message, retry_after, system, operation, external_id, code):
    return RateLimitedError(
        message, retry_after=retry_after, system=system, operation=operation,
        external_id=external_id, code=code,
    )


class AuthExpiredError(ConnectorError):
    """Token or session no longer valid. Clients refresh once and retry themselves;
    this escapes only when the fresh credential is refused too."""

    retryable = True


class PermanentError(ConnectorError):
    """The external system refused the request for a reason a retry cannot fix."""


class RecipientError(PermanentError):
    """Some or all chat recipients are unknown/unlicensed on the platform."""

    def __init__(self, message: str, *, recipients: list[str], **context: str | None) -> None:
        self.recipients = recipients
        super().__init__(message, **context)  # type: ignore[arg-type]

    def __reduce__(self):
        return (
            _rebuild_recipient_error,
            (self.message, self.recipients, self.system, self.operation, self.external_id, self.code),
            self.__dict__,
        )


class SignInCodeError(PermanentError):
    """The platform refused a sign-in code: unknown, already used, expired, or issued to
    another app (WeCom 40029, DingTalk 40078). The person must open the link again."""


def _rebuild_recipient_error(message, recipients, system, operation, external_id, code):
    return RecipientError(
        message, recipients=recipients, system=system, operation=operation,
        external_id=external_id, code=code,
    )


__all__ = [
    "AuthExpiredError",
    "ConfigError",
    "ConnectorError",
    "HubError",
    "MappingBugError",
    "NotFoundError",
    "PermanentError",
    "RateLimitedError",
    "RecipientError",
    "RetryableError",
    "SchemaNotCurrentError",
    "SignInCodeError",
]
