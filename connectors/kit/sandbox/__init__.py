"""Shared parts of every vendor sandbox: fault injection and an in-process server.

Each ``connectors/<system>/sandbox`` models its vendor's state, rules and errors; what
is the same for all of them (switchable faults, starting on a free port) lives here so
that it is written once.
"""

from connectors.kit.sandbox.faults import FAULT_KINDS, FaultPlan
from connectors.kit.sandbox.server import RunningServer, serve_in_thread

__all__ = ["FAULT_KINDS", "FaultPlan", "RunningServer", "serve_in_thread"]
