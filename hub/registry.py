"""The one place the hub core learns which connectors exist.

Connectors are listed here by module path and imported on first use, so the core
never imports a connector anywhere else and a broken connector cannot stop the CLI
from starting. Each listed module exposes ``CONNECTOR: hub.contracts.ConnectorSpec``.
Adding a connector is adding a line.
"""

from __future__ import annotations

import importlib
from functools import cache

from hub.contracts import ConnectorSpec
from hub.errors import ConfigError

CONNECTOR_MODULES: dict[str, str] = {
    "kingdee": "connectors.kingdee.connector",
    "wecom": "connectors.wecom.connector",
}


@cache
def connector(system: str) -> ConnectorSpec:
    """The registry entry of ``system``; a clear error for an unknown name."""
    try:
        module_path = CONNECTOR_MODULES[system]
    except KeyError:
        raise ConfigError(f"unknown system {system!r}; known: {', '.join(sorted(CONNECTOR_MODULES))}") from None
    spec = importlib.import_module(module_path).CONNECTOR
    if not isinstance(spec, ConnectorSpec) or spec.system != system:
        raise ConfigError(f"{module_path}.CONNECTOR is not the ConnectorSpec of {system!r}")
    return spec


def systems() -> list[str]:
    """Names of all registered systems."""
    return sorted(CONNECTOR_MODULES)


def writer_owner(kind: str) -> ConnectorSpec:
    """The connector that writes outbox rows of ``kind`` ("<system>.<writer>")."""
    system = kind.split(".", 1)[0]
    spec = connector(system)
    if kind not in spec.writer_kinds:
        raise ConfigError(f"{system} has no writer for outbox kind {kind!r}")
    return spec
