"""Vendor error-code tables: how a connector extends the kit's one HTTP classification.

Past the HTTP layer (:mod:`connectors.kit.http`), platforms report failures with their own
codes: WeCom ``errcode``, Kingdee ``ResponseStatus.MsgCode`` and DingTalk oapi ``errcode``
(numbers inside a 200 reply), DingTalk v1.0 ``code`` (names such as
``"InvalidAuthentication"`` beside a 4xx status), Yonyou ``code``. A connector declares its
codes as data, numbers or names::

    ERRCODES = CodeTable({
        -1: CodeRule(RetryableError, "WeCom busy"),
        45009: CodeRule(RateLimitedError, "rate limited", retry_after=60.0),
        42001: CodeRule(AuthExpiredError, "access token rejected"),
        81013: CodeRule(RecipientError, "no valid recipient"),
    })                                     # unknown codes: PermanentError

and turns a failed reply into an exception with ``ERRCODES.error(code, text, call)``. The
same table tells the auth flow which codes mean "credential expired"
(:meth:`CodeTable.means_expired`), so the code that triggers the one refresh and the code
that is raised after it cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from connectors.kit.http import DEFAULT_RETRY_AFTER_S, CallContext
from hub.errors import AuthExpiredError, ConnectorError, PermanentError, RateLimitedError, RecipientError

Code = int | str  # a numeric errcode or a named code


@dataclass(frozen=True)
class CodeRule:
    """What one vendor code means: the hub error class, a message label, a wait for rate limits."""

    error: type[ConnectorError] = PermanentError
    label: str = ""
    retry_after: float | None = None  # RateLimitedError only; None: DEFAULT_RETRY_AFTER_S


@dataclass(frozen=True)
class CodeTable:
    """A vendor's code → :class:`CodeRule` table; codes not listed follow ``default``.

    ``code_prefix`` names the code in error texts and ``ConnectorError.code``
    (``"MsgCode "`` gives ``"MsgCode 9"``; WeCom's bare errcodes use ``""``).
    """

    rules: Mapping[Code, CodeRule]
    default: CodeRule = field(default_factory=CodeRule)
    code_prefix: str = ""

    def rule(self, code: Code | None) -> CodeRule:
        """The rule for ``code`` (the default for unknown or missing codes)."""
        return self.rules.get(code, self.default) if code is not None else self.default

    def knows(self, code: Code | None) -> bool:
        """True when ``code`` has a rule of its own (not the default)."""
        return code is not None and code in self.rules

    def means_expired(self, code: Code | None) -> bool:
        """True when ``code`` says the token or session is no longer valid."""
        return code is not None and issubclass(self.rule(code).error, AuthExpiredError)

    def code_text(self, code: Code | None) -> str | None:
        """``code`` as it appears in ``ConnectorError.code``."""
        return None if code is None else f"{self.code_prefix}{code}"

    def error(
        self, code: Code | None, text: str, call: CallContext, *, recipients: Sequence[str] = (),
    ) -> ConnectorError:
        """The hub error for a failed reply with ``code`` and vendor message ``text``.

        ``recipients`` are the refused chat recipients, for codes mapped to RecipientError.
        """
        rule = self.rule(code)
        message = f"{rule.label}: {text}" if rule.label else text
        context = call.context(self.code_text(code))
        if issubclass(rule.error, RateLimitedError):
            wait = DEFAULT_RETRY_AFTER_S if rule.retry_after is None else rule.retry_after
            return rule.error(message, retry_after=wait, **context)
        if issubclass(rule.error, RecipientError):
            return rule.error(message, recipients=list(recipients), **context)
        return rule.error(message, **context)

    def override(self, rules: Mapping[Code, CodeRule]) -> CodeTable:
        """This table with some codes meaning something else (one operation's exceptions)."""
        return CodeTable({**self.rules, **rules}, self.default, self.code_prefix)


__all__ = ["Code", "CodeRule", "CodeTable"]
