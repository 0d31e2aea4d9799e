"""Unexpected exceptions (bugs) as the audit may keep them: the traceback, secret-free and short.

A writer that raises anything but a ``ConnectorError`` has a bug; the person fixing it
needs the traceback, so it goes into the audit row of the failed attempt. Tracebacks are
built without local variables (``traceback`` never renders them), and what they do carry
(exception messages, source lines) is scrubbed of credential-looking values: ``key=value``
pairs whose name says secret, token, password, signature, cookie or session, bearer
tokens, and long opaque strings (hex of 32+ characters, base64 of 40+). Personal data is
masked later by ``hub.audit`` like every audit text. Kept to the last
:data:`MAX_TRACEBACK_CHARS` characters: the innermost frames and the error are at the end.
"""

from __future__ import annotations

import re
import traceback

MAX_TRACEBACK_CHARS = 4000
MAX_SUMMARY_CHARS = 500
REDACTED = "<redacted>"

_SECRET_PAIR = re.compile(
    r"(?i)((?:app_?secret|secret|password|passwd|pwd|token|access_token|signature|cookie|sessionid|"
    r"authorization|api_?key)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&)}\]]+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_LONG_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40,}={0,2}")


def redact(text: str) -> str:
    """``text`` with credential-looking values replaced by ``<redacted>``."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, text)
    text = _LONG_HEX.sub(REDACTED, text)
    return _LONG_BASE64.sub(REDACTED, text)


def summary(error: BaseException) -> str:
    """``ExceptionType: message``, redacted, one line, at most :data:`MAX_SUMMARY_CHARS`."""
    message = str(error)
    line = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return redact(" ".join(line.split()))[:MAX_SUMMARY_CHARS]


def formatted(error: BaseException) -> str:
    """The redacted traceback of ``error`` (its chain included), at most its last
    :data:`MAX_TRACEBACK_CHARS` characters."""
    text = redact("".join(traceback.format_exception(error)))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-(MAX_TRACEBACK_CHARS - 1):]
    return text


__all__ = ["MAX_TRACEBACK_CHARS", "formatted", "redact", "summary"]
