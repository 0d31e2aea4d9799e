"""The hub's one Dagster ``Definitions``: what `dagster dev -w dagster_workspace.yaml` loads.

Where to look: inbound assets per system in ``pipelines/<system>/assets.py``, their
checks next to them, outbound work in ``pipelines/outbox/``, jobs in ``jobs.py``,
cadences in ``schedules.py``. Resources are configured from the hub's settings (the
same ``HUB_*`` variables and ``hub.toml`` as the CLI); secrets through ``EnvVar``, so
they never appear in the run config shown in the UI. :func:`build_definitions` builds the same definitions
over another :class:`HubResource` (the demo and the tests run the jobs in process that
way, on their own schema and sandboxes).
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from hub.settings import Settings
from pipelines.jobs import ALL_JOBS
from pipelines.kingdee.assets import KINGDEE_ASSETS
from pipelines.kingdee.checks import kingdee_open_receivables_match
from pipelines.outbox.assets import orders_to_erp, receivable_followups
from pipelines.outbox.checks import approved_orders_reached_erp, no_dead_letters, outbox_not_stuck
from pipelines.outbox.sensors import outbox_sensor
from pipelines.quarantine_checks import quarantine_checks
from pipelines.resources import DatabaseResource, HubResource, KingdeeResource, WeComResource
from pipelines.schedules import ALL_SCHEDULES
from pipelines.wecom.assets import WECOM_SYNC_ASSETS, reminders


def _secret(name: str) -> EnvVar | None:
    """An EnvVar for a secret that is set, else None (the sandbox, or the embedded database)."""
    return EnvVar(name) if os.environ.get(name) else None


def hub_resource() -> HubResource:
    """The HubResource from the hub's settings (environment and ``hub.toml``), secrets as EnvVar."""
    s = Settings()
    k, w = s.kingdee, s.wecom
    return HubResource(
        database=DatabaseResource(url=_secret("HUB_DATABASE_URL"), schema_name=s.database_schema, home=str(s.home)),
        kingdee=KingdeeResource(base_url=k.base_url, acct_id=k.acct_id, username=k.username, app_id=k.app_id,
                                app_secret=_secret("HUB_KINGDEE__APP_SECRET"), submit_and_audit=k.submit_and_audit,
                                page_size=k.page_size),
        wecom=WeComResource(base_url=w.base_url, corp_id=w.corp_id, secret=_secret("HUB_WECOM__SECRET"),
                            agent_id=w.agent_id),
    )


def build_definitions(hub: HubResource) -> Definitions:
    """Every asset, check, job, schedule and sensor of the hub, on ``hub``."""
    return Definitions(
        assets=[*KINGDEE_ASSETS, *WECOM_SYNC_ASSETS, orders_to_erp, receivable_followups, reminders],
        asset_checks=[kingdee_open_receivables_match, approved_orders_reached_erp, outbox_not_stuck, no_dead_letters,
                      *quarantine_checks("kingdee"), *quarantine_checks("wecom")],
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=[outbox_sensor],
        resources={"hub": hub},
    )


defs = build_definitions(hub_resource())
