"""A customer stream of hand-written records, for driving ``hub.engine.sync_stream`` directly.

Each raw record is a dict: ``id`` and ``name``, and optionally ``code`` (credit code),
``region``, ``industry``, ``owner``, ``credit_limit`` and ``modified`` (the change time at
the source; ``modified_at`` when absent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from canonical_model.records import CustomerRecord
from hub.contracts import Page, StreamSpec


def hand_written_customers(system: str, source_object: str = "customer", *,
                           modified_at: dt.datetime | None = None) -> StreamSpec:
    """A one-page ``customers`` stream of ``system`` that maps the records it is given."""
    def read(records: list[dict[str, Any]], cursor: str | None) -> Iterator[Page]:
        yield Page(records, None)

    return StreamSpec(
        name="customers", source_object=source_object, target="customer", key_field="id", cursor_field=None,
        read_pages=read,
        map_record=lambda raw: CustomerRecord(
            source_system=system, source_object=source_object, external_id=raw["id"], name=raw["name"],
            credit_code=raw.get("code"), region=raw.get("region"), industry=raw.get("industry"),
            owner_ref=raw.get("owner"), credit_limit=raw.get("credit_limit"),
            modified_at=raw.get("modified", modified_at)),
    )
