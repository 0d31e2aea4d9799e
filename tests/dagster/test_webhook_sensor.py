"""Dagster delivers webhooks back to the CRM: the outbox sensor sees events not yet handed to
the outbox and starts ``crm_webhook_push``, whose run publishes and delivers them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from connectors.crm.sandbox import SANDBOX_SECRET, create_app
from connectors.kit.sandbox import RunningServer, serve_in_thread
from hub.rules import webhooks
from hub.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.in_process import run_job
from pipelines.resources import HubResource


@pytest.fixture
def receiver() -> Iterator[RunningServer]:
    with serve_in_thread(create_app()) as server:
        yield server


def test_an_event_waiting_for_publication_starts_the_webhook_push_which_delivers_it(fast_settings: Settings, db,
                                                                                    receiver):
    configured = fast_settings.with_connector("crm", base_url=receiver.url + "/webhooks",
                                              signing_secret=SANDBOX_SECRET)
    hub = HubResource.from_settings(configured)
    defs = build_definitions(hub)
    (outbox_sensor,) = defs.sensors or []

    def evaluate() -> SensorResult | SkipReason:
        with build_sensor_context(resources={"hub": hub}) as context:
            return outbox_sensor(context)  # type: ignore[no-any-return]

    assert isinstance(evaluate(), SkipReason)
    # given a lead assigned (its event recorded, not yet in the outbox)
    with db.begin() as conn:
        customer = conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES ('甲', '甲') "
                                        "RETURNING id")).scalar_one()
        event_id = webhooks.emit(conn, "lead.assigned", customer_id=customer, subject="lead:1", data={"lead_id": 1})
    # when the sensor evaluates, it asks for the webhook push
    result = evaluate()
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests or []
    assert request.job_name == "crm_webhook_push"
    # and that run delivers the event, after which nothing is left to ask for
    with DagsterInstance.ephemeral() as instance:
        assert run_job(defs, "crm_webhook_push", instance=instance).success
    assert [d.delivery_id for d in receiver.app.state.receiver.accepted] == [event_id]
    assert isinstance(evaluate(), SkipReason)
