"""Which vault belongs to which database engine.

Code that reads or writes personal data holds a connection, not the settings; the vault
is found through the connection's engine, bound when the :class:`~hub.database.Database`
was made from settings (:func:`hub.database.Database.from_settings`). The keys are
loaded on first use, so commands that never touch personal data (``hub db upgrade``,
``hub doctor``'s other checks) run without them.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine

from hub.errors import ConfigError
from hub.vault.cipher import Vault

_BOUND: weakref.WeakKeyDictionary[Engine, Callable[[], Vault]] = weakref.WeakKeyDictionary()


def bind(engine: Engine, source: Callable[[], Vault] | Vault) -> None:
    """Give ``engine``'s connections a vault (a vault, or a function loading it once)."""
    if isinstance(source, Vault):
        vault = source
        _BOUND[engine] = lambda: vault
    else:
        _BOUND[engine] = functools.cache(source)


def bind_unless_bound(engine: Engine, source: Callable[[], Vault]) -> None:
    """:func:`bind`, unless ``engine`` already has a vault (a runtime over a database a test
    or tool made itself gets its vault from the runtime's settings)."""
    if engine not in _BOUND:
        bind(engine, source)


def vault_of_engine(engine: Engine) -> Vault:
    """The vault bound to ``engine``; ConfigError when none is."""
    source = _BOUND.get(engine)
    if source is None:
        raise ConfigError("this database handle has no vault: open it with Database.from_settings "
                          "(HUB_VAULT__KEYS, HUB_VAULT__INDEX_KEY)")
    return source()


def vault_for(conn: Connection) -> Vault:
    """The vault of the database ``conn`` belongs to."""
    return vault_of_engine(conn.engine)
