"""Dagster definitions of the hub (see ``pipelines.definitions``).

Modules that define decorated Dagster functions (assets, checks, sensors) do not use
``from __future__ import annotations``: Dagster inspects the ``context`` and ``config``
parameters' annotations as objects, and string annotations fail definition loading.
"""
