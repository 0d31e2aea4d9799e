"""Yonyou YonBIP (用友) connector: open-API client, mapping, streams, writers, sandbox.

Reading order follows the data: :mod:`.client` (gateway discovery, token, error envelope) →
:mod:`.streams` (what is read incrementally) → :mod:`.mapping` (list rows ⇄ canonical records)
→ :mod:`.writers` (idempotent sales-order creation). :mod:`.sandbox` is a local emulator of
the open API that the vendor's Python package accepts; it is imported on demand, not from
here, so production code never loads it.
"""

from connectors.yonyou.client import BatchOutcome, Saved, YonyouAuth, YonyouBusinessError, YonyouClient
from connectors.yonyou.streams import STREAMS
from connectors.yonyou.writers import SalesOrderWriter

__all__ = ["STREAMS", "BatchOutcome", "SalesOrderWriter", "Saved", "YonyouAuth", "YonyouBusinessError",
           "YonyouClient"]
