"""The hub's one Dagster ``Definitions``: what `dagster dev -w dagster_workspace.yaml` loads.

Where to look: inbound assets per system in ``pipelines/<system>/assets.py``, their
checks next to them, outbound work in ``pipelines/outbox/``, jobs in ``jobs.py``,
cadences in ``schedules.py``. Resources are configured from the environment (the same
``HUB_*`` variables as the CLI); secrets through ``EnvVar``, so they never appear in
the run config shown in the UI.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

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
    """An EnvVar for a secret that is set, else None (the sandbox is used)."""
    return EnvVar(name) if os.environ.get(name) else None


def hub_resource() -> HubResource:
    """The HubResource from the environment."""
    env = os.environ.get
    return HubResource(
        database=DatabaseResource(url=_secret("HUB_DATABASE_URL"), schema_name=env("HUB_DATABASE_SCHEMA", "public"),
                                  home=env("HUB_HOME")),
        kingdee=KingdeeResource(base_url=env("HUB_KINGDEE__BASE_URL"), acct_id=env("HUB_KINGDEE__ACCT_ID"),
                                username=env("HUB_KINGDEE__USERNAME"), app_id=env("HUB_KINGDEE__APP_ID"),
                                app_secret=_secret("HUB_KINGDEE__APP_SECRET")),
        wecom=WeComResource(base_url=env("HUB_WECOM__BASE_URL"), corp_id=env("HUB_WECOM__CORP_ID"),
                            secret=_secret("HUB_WECOM__SECRET"),
                            agent_id=int(env("HUB_WECOM__AGENT_ID") or 0) or None),
    )


defs = Definitions(
    assets=[*KINGDEE_ASSETS, *WECOM_SYNC_ASSETS, orders_to_erp, receivable_followups, reminders],
    asset_checks=[kingdee_open_receivables_match, approved_orders_reached_erp, outbox_not_stuck, no_dead_letters,
                  *quarantine_checks("kingdee"), *quarantine_checks("wecom")],
    jobs=ALL_JOBS,
    schedules=ALL_SCHEDULES,
    sensors=[outbox_sensor],
    resources={"hub": hub_resource()},
)
