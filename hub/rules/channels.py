"""Which chat platform reaches a person: one, chosen by directory and preference.

A tenant may run several chat platforms at once (sales on DingTalk, finance on WeCom; or
a company moving region by region). A person appears in the directories of the platforms
they use: the hub knows it from the platform's id on ``internal_user`` (``wecom_userid``,
``dingtalk_userid``: set by the directory syncs, or linked by mobile). Every reminder and
to-do for a person goes to **one** platform: the first in the configured preference
(``HUB_REMINDERS__CHANNEL_PREFERENCE``, default: every chat platform by name) whose
account for them is known and whose directory lists them as active (a member disabled in
WeCom may still be active in DingTalk). Nobody is reminded twice.

:func:`choice_sql` turns that rule into SQL, so a whole evaluation picks channels in one
query instead of per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hub.errors import ConfigError
from hub.registry import chat_systems, connector


@dataclass(frozen=True)
class Channel:
    """A chat platform as the rules use it."""

    system: str
    label: str
    column: str  # internal_user column of the platform's user id
    alias_column: str | None  # internal_user column of its second id (DingTalk unionId)
    holds_todos: bool  # the connector has a "todo" writer


def channels(preference: Sequence[str] = ()) -> list[Channel]:
    """The chat platforms in order of preference: ``preference`` first (each must be a
    registered chat platform), then any other chat platform by name."""
    known = chat_systems()
    unknown = [name for name in preference if name not in known]
    if unknown:
        raise ConfigError(f"HUB_REMINDERS__CHANNEL_PREFERENCE names {', '.join(unknown)}, which "
                          f"{'is' if len(unknown) == 1 else 'are'} not a chat platform (known: {', '.join(known)})")
    ordered = [*dict.fromkeys([*preference, *sorted(known)])]
    found = []
    for system in ordered:
        spec = connector(system)
        assert spec.chat is not None  # chat_systems() lists only chat platforms
        found.append(Channel(system, spec.chat.label, spec.chat.user_column, spec.chat.alias_column,
                             "todo" in spec.writers))
    return found


def _case(user: str, options: list[tuple[Channel, str]]) -> str:
    # active, known to the platform, and not marked inactive by that platform's directory
    whens = " ".join(
        f"WHEN {user}.active AND {user}.{c.column} IS NOT NULL AND "
        f"COALESCE(CAST({user}.directories -> '{c.system}' ->> 'active' AS boolean), true) THEN {value}"
        for c, value in options)
    return f"CASE {whens} END" if options else "NULL"


def choice_sql(user: str, ordered: Sequence[Channel]) -> tuple[str, str, str]:
    """SQL expressions over the ``internal_user`` row aliased ``user``: the chosen channel's
    system name, the person's account there and their alias there (NULLs when no platform
    knows them as an active member). ``ordered`` comes from :func:`channels` (names are
    registry-validated identifiers, never user input)."""
    system = _case(user, [(c, f"'{c.system}'") for c in ordered])
    account = _case(user, [(c, f"{user}.{c.column}") for c in ordered])
    alias = _case(user, [(c, f"{user}.{c.alias_column}" if c.alias_column else "NULL") for c in ordered])
    return system, account, alias


def labels(ordered: Sequence[Channel]) -> str:
    """"WeCom or DingTalk": the platforms as a person reads them."""
    names = [c.label for c in ordered]
    return " or ".join(names) if names else "no chat platform"


__all__ = ["Channel", "channels", "choice_sql", "labels"]
