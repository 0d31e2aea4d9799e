"""The hub's one Dagster ``Definitions``: what `dagster dev -w dagster_workspace.yaml` loads.

Everything is generated from the connector registry (``hub.registry``), so a new
connector appears here with its folder and its registry line: stream and push assets
(``pipelines.assets``), the rules' assets (``pipelines.rule_assets``), checks next to the
assets they judge (``pipelines.checks``), jobs (``pipelines.jobs``), schedules whose
cadences are settings (``pipelines.schedules``) and the outbox sensor
(``pipelines.sensors``). Resources come from the hub's settings (the same ``HUB_*``
variables and ``hub.toml`` as the CLI), secrets through ``EnvVar`` so they never appear
in the run config shown in the UI. :func:`build_definitions` builds the same definitions
over another :class:`HubResource` (the demo and the tests run the jobs in process that
way, on their own schema and sandboxes).
"""

from __future__ import annotations

from dagster import Definitions

import hub.rules  # noqa: F401  (registers the outbox effect handlers and sync hooks the jobs rely on)
from hub.rules.automation import load_book
from hub.settings import Settings
from pipelines.assets import connector_assets
from pipelines.checks import all_checks
from pipelines.jobs import build_jobs
from pipelines.resources import HubResource, hub_resource
from pipelines.rule_assets import AUTOMATION_RULES, REMINDERS_DUE, rule_assets
from pipelines.schedules import build_schedules
from pipelines.sensors import build_outbox_sensor


def build_definitions(hub: HubResource, settings: Settings | None = None) -> Definitions:
    """Every asset, check, job, schedule and sensor of the hub, on ``hub``."""
    settings = settings or hub.hub_settings()
    load_book(settings)  # a tenant's rules file that does not validate stops the code location at load
    jobs = build_jobs(settings)
    return Definitions(
        assets=[*connector_assets(push_deps={"reminder": [REMINDERS_DUE, AUTOMATION_RULES],
                                                   "todo": [REMINDERS_DUE, AUTOMATION_RULES]}), *rule_assets()],
        asset_checks=all_checks(),
        jobs=jobs,
        schedules=build_schedules(settings, jobs),
        sensors=[build_outbox_sensor(jobs)],
        resources={"hub": hub},
    )


defs = build_definitions(hub_resource())
