"""Kingdee K/3 Cloud (金蝶云·星空) connector: WebAPI client, mapping, streams, writers, sandbox.

Reading order follows the data: :mod:`.client` (HTTP, auth, error envelope) →
:mod:`.streams` (what is read incrementally) → :mod:`.mapping` (raw rows ⇄ canonical records) →
:mod:`.writers` (idempotent sales-order creation). :mod:`.sandbox` is a local emulator of the
WebAPI that the official SDK accepts; it is imported on demand, not from here, so production
code never loads it.
"""

from connectors.kingdee.client import (
    MAX_PAGE_SIZE,
    FieldError,
    KingdeeAuth,
    KingdeeBusinessError,
    KingdeeClient,
    RecordOutcome,
    SaveResult,
    SuccessEntity,
)
from connectors.kingdee.streams import STREAMS, kingdee_streams
from connectors.kingdee.writers import SalesOrderWriter

__all__ = [
    "MAX_PAGE_SIZE",
    "STREAMS",
    "FieldError",
    "KingdeeAuth",
    "KingdeeBusinessError",
    "KingdeeClient",
    "RecordOutcome",
    "SalesOrderWriter",
    "SaveResult",
    "SuccessEntity",
    "kingdee_streams",
]
