"""The hub's jobs run in this process, their outcome as plain data (the demo, the tests).

:func:`run_job` executes one job of a ``Definitions`` (normally
``pipelines.definitions.build_definitions`` over a :class:`~pipelines.resources.HubResource`
of the caller's choosing) and returns a :class:`JobOutcome`: per asset the numbers of its
materialization metadata, per asset check whether it passed. Runs go to the given
instance (an ephemeral one by default), so nothing is left behind.
"""

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

# Dagster's own event log goes to the console at DEBUG by default; the hub logs its work itself.
QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluation."""

    asset: str
    name: str
    passed: bool
    severity: str  # "ERROR" (blocking when the check says so) or "WARN"
    metadata: dict[str, Any]


@dataclass
class JobOutcome:
    """What one run of a job did."""

    job: str
    run_id: str
    success: bool
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)  # "kingdee/customers" -> metadata
    checks: list[CheckOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "step: message" of each failed step

    def checks_of(self, asset: str) -> list[CheckOutcome]:
        """The check evaluations of one asset."""
        return [c for c in self.checks if c.asset == asset]

    def check(self, asset: str, name: str) -> CheckOutcome:
        """The evaluation of one named check (KeyError if it did not run)."""
        for c in self.checks:
            if (c.asset, c.name) == (asset, name):
                return c
        raise KeyError(f"{asset}:{name} did not run in {self.job}")


def op_config(asset_key: str, **config: Any) -> dict[str, Any]:
    """Run config for the asset ``asset_key`` ("crm/orders_to_erp")'s ``Config``."""
    return {"ops": {asset_key.replace("/", "__"): {"config": config}}}


def run_job(defs: Definitions, name: str, *, run_config: Mapping[str, Any] | None = None,
            instance: DagsterInstance | None = None, tags: Mapping[str, str] | None = None) -> JobOutcome:
    """Execute job ``name`` of ``defs`` in process; a failing step fails the outcome, not the caller."""
    job = defs.resolve_job_def(name)
    config = {**QUIET_LOGGERS, **(run_config or {})}
    with DagsterInstance.ephemeral() if instance is None else nullcontext(instance) as run_instance:
        result = job.execute_in_process(run_config=config, instance=run_instance, raise_on_error=False,
                                        tags=dict(tags or {}))
        return _outcome(name, result)


def _outcome(name: str, result: ExecuteInProcessResult) -> JobOutcome:
    outcome = JobOutcome(job=name, run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        outcome.assets[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()}
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks.append(CheckOutcome(
            asset=evaluation.asset_key.to_user_string(), name=evaluation.check_name, passed=evaluation.passed,
            severity=evaluation.severity.value, metadata={k: v.value for k, v in evaluation.metadata.items()}))
    for event in result.all_events:
        if event.is_step_failure:
            outcome.errors.append(f"{event.step_key}: {_root_cause(event.step_failure_data.error, event.message)}")
        elif event.is_resource_init_failure or event.is_run_failure:
            error = getattr(event.event_specific_data, "error", None)
            outcome.errors.append(f"{event.event_type_value}: {_root_cause(error, event.message)}")
    return outcome


def _root_cause(error: Any, fallback: str | None) -> str:
    """The message of the innermost cause (the hub's own error, not Dagster's wrapper) of a
    Dagster ``SerializableErrorInfo`` (not part of Dagster's public API, hence ``Any``)."""
    if error is None:
        return fallback or ""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
