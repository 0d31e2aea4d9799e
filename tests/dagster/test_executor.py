"""The executor of the hub's jobs is configuration: in process by default, multiprocess on request.

With ``HUB_DAGSTER__EXECUTOR=multiprocess`` Dagster runs a job's independent steps at once
(the stream assets' deps follow ``StreamSpec.depends_on``), no more per run than
``HUB_DAGSTER__MAX_CONCURRENT_STEPS`` and no more per system than its connector's concurrency.
"""

from __future__ import annotations

from dagster import AssetKey

from hub.settings import DagsterSettings, Settings
from pipelines.assets import connector_assets
from pipelines.jobs import build_jobs


def multiprocess_settings(**dagster: object) -> Settings:
    return Settings(sandbox=True).model_copy(update={"dagster": DagsterSettings(executor="multiprocess", **dagster)})


def test_by_default_every_job_runs_its_steps_in_process():
    assert {job.executor_def.name for job in build_jobs(Settings(sandbox=True))} == {"in_process"}


def test_multiprocess_runs_steps_at_once_within_each_systems_concurrency():
    # given the multiprocess executor, six steps at once, and Kingdee allowing two calls at once
    settings = multiprocess_settings(max_concurrent_steps=6).with_connector("kingdee", max_concurrent_calls=2)

    # when the jobs are built
    jobs = {job.name: job for job in build_jobs(settings)}

    # then every job uses it, with the step limit and one tag limit per system from its connector
    assert {job.executor_def.name for job in jobs.values()} == {"multiprocess"}
    config = jobs["kingdee_inbound"].executor_def.config_schema.resolve_config({}).value["config"]  # type: ignore[union-attr]
    assert config["max_concurrent"] == 6
    limits = {(limit["value"], limit["limit"]) for limit in config["tag_concurrency_limits"]}
    assert ("kingdee", 2) in limits and ("yonyou", 3) in limits
    assert all(limit["key"] == "hub/system" for limit in config["tag_concurrency_limits"])


def test_the_inbound_assets_let_orders_receivables_and_receipts_run_together_after_customers():
    assets = {key: a for a in connector_assets() for key in a.keys}
    customers = AssetKey(["kingdee", "customers"])
    for stream in ("sales_orders", "receivables", "receipts"):
        deps = set(assets[AssetKey(["kingdee", stream])].asset_deps[AssetKey(["kingdee", stream])])
        assert deps == {customers}, stream  # only customers: nothing orders them among themselves
    assert not set(assets[customers].asset_deps[customers])
