"""Logging for hub processes, with every configured secret redacted from every line.

The redacting filter knows the *values* of all ``SecretStr`` settings and replaces
them wherever they appear (message, arguments, exception text), so even a vendor
library that logs a URL with a token or secret cannot leak it through our handlers.
Credentials the hub never configured (access tokens and session ids the platforms
issue at run time) are recognised by their shape instead: ``access_token=…`` in a URL,
a ``kdservice-sessionid`` cookie or header, an ``Authorization``/``Cookie``/signature
header, as httpx and httpcore print them at DEBUG.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

from hub.settings import Settings

REDACTED = "[REDACTED]"

# (name)(separator)(value): linear-time patterns, no nested quantifiers
_CREDENTIAL_SHAPES = (
    re.compile(r"(?i)\b(access_token|corpsecret|appsecret|app_secret|password|passwd|secret)(=)(?!\*\*\*|\[REDACTED\])([^&\s'\"<>]+)"),
    re.compile(r"(?i)\b(kdservice-sessionid|asp\.net_sessionid)(['\"]?,\s*b?['\"]|=|:\s*)(?!\[REDACTED\])([^;'\"\s)]+)"),
    re.compile(r"(?i)\b(authorization|cookie|x-kd-signature|x-api-signature|x-acs-dingtalk-access-token)"
               r"(['\"]?,\s*b?['\"]|:\s*)(?!\[REDACTED\])([^'\"\r\n)]+)"),
)


def redact_credential_shapes(text: str) -> str:
    """Mask values that look like run-time credentials (see the module docstring)."""
    for pattern in _CREDENTIAL_SHAPES:
        text = pattern.sub(rf"\1\2{REDACTED}", text)
    return text


def secret_values(settings: BaseModel) -> set[str]:
    """Every non-empty secret value in ``settings`` (nested sections included)."""
    found: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if len(secret) >= 4:  # redacting 1-3 chars would mangle ordinary text
                found.add(secret)
        elif isinstance(value, BaseModel):
            found |= secret_values(value)
        elif isinstance(value, dict):  # the connector sections
            for item in value.values():
                if isinstance(item, BaseModel):
                    found |= secret_values(item)
    return found


class RedactSecrets(logging.Filter):
    """Replace known secret values in log records."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        """Learn more secret values (e.g. a sandbox's generated credentials)."""
        self.secrets = sorted(set(self.secrets) | set(secrets), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return redact_credential_shapes(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.redact(message)
        record.args = None
        return True


_FILTER = RedactSecrets(())


class CurrentStderr(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stderr`` is at the time of each record, not the stream of
    the moment the handler was made: a test runner or a daemon may swap and close it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr


def redaction_filter() -> RedactSecrets:
    """The process-wide filter (tests attach it to their capturing handler)."""
    return _FILTER


def configure_logging(settings: Settings, level: str | None = None) -> None:
    """Log to stderr at ``level`` (default from settings) with secrets redacted."""
    _FILTER.add(secret_values(settings))
    root = logging.getLogger()
    root.setLevel(level or settings.log_level)
    if not any(getattr(h, "_hub_handler", False) for h in root.handlers):
        handler = CurrentStderr()
        handler._hub_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_FILTER)
        root.addHandler(handler)
    for noisy in ("httpx", "httpcore", "urllib3", "alembic", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
