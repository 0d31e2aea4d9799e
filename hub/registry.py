"""The one place the hub core learns which connectors exist.

Connectors are listed here by module path and imported on first use, so the core
never imports a connector anywhere else. Each listed module exposes
``CONNECTOR: hub.contracts.ConnectorSpec``; its settings model, streams and writer kinds
are what ``Settings``, Dagster, the CLI and ``hub doctor`` are generated from.

Adding a connector is its folder plus one line in :data:`CONNECTOR_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Any

from hub.contracts import ConnectorSpec
from hub.errors import ConfigError

CONNECTOR_MODULES: dict[str, str] = {
    "crm": "connectors.crm.connector",
    "dingtalk": "connectors.dingtalk.connector",
    "kingdee": "connectors.kingdee.connector",
    "wecom": "connectors.wecom.connector",
    "yonyou": "connectors.yonyou.connector",
}

_loaded: dict[tuple[str, str], ConnectorSpec[Any, Any]] = {}


def connector(system: str) -> ConnectorSpec[Any, Any]:
    """The registry entry of ``system``; a clear error for an unknown name."""
    try:
        module_path = CONNECTOR_MODULES[system]
    except KeyError:
        raise ConfigError(f"unknown system {system!r}; known: {', '.join(systems()) or 'none'}") from None
    cached = _loaded.get((system, module_path))
    if cached is not None:
        return cached
    spec = getattr(importlib.import_module(module_path), "CONNECTOR", None)
    if not isinstance(spec, ConnectorSpec) or spec.system != system:
        raise ConfigError(f"{module_path}.CONNECTOR is not the ConnectorSpec of {system!r}")
    _loaded[(system, module_path)] = spec
    return spec


def systems() -> list[str]:
    """Names of all registered systems."""
    return sorted(CONNECTOR_MODULES)


def specs() -> list[ConnectorSpec[Any, Any]]:
    """Every registered connector's spec, by system name."""
    return [connector(system) for system in systems()]


def writer_kinds() -> list[str]:
    """Every outbox kind some registered connector writes."""
    return [kind for spec in specs() for kind in spec.writer_kinds]


def writer_owner(kind: str) -> ConnectorSpec[Any, Any]:
    """The connector that writes outbox rows of ``kind`` ("<system>.<writer>")."""
    system = kind.split(".", 1)[0]
    if system not in CONNECTOR_MODULES:
        raise ConfigError(f"unknown outbox kind {kind!r}; known: {', '.join(writer_kinds()) or 'none'}")
    spec = connector(system)
    spec.writer(kind)  # raises a ConfigError naming the known kinds
    return spec


def chat_systems() -> list[str]:
    """Registered systems that are chat platforms (reminders can reach people there)."""
    return [spec.system for spec in specs() if spec.chat is not None]


def inbound_job_name(system: str) -> str:
    """The Dagster job reading all of ``system``'s streams (``pipelines.jobs``; the
    operations page links to it)."""
    return f"{system}_inbound"


def push_job_name(kind: str) -> str:
    """The Dagster job dispatching outbox kind ``<system>.<writer>``."""
    return kind.replace(".", "_") + "_push"
