"""The events the hub delivers to the CRM's webhook endpoint, and their header names.

The payload of each is built by the domain rules (``hub.rules.webhooks``); what the CRM can
subscribe to (``HUB_CRM__EVENTS``) is this list. ``ping`` is what ``hub doctor`` sends to
check the endpoint and its secret; it is never stored or retried.
"""

from __future__ import annotations

RECEIVABLE_CHANGED = "receivable.changed"  # an ERP sync changed a receivable's open amount or status
ORDER_IN_ERP = "order.in_erp"  # a CRM order reached the ERP: bill number and status
TASK_DONE_IN_CHAT = "task.done_in_chat"  # a task was ticked off in WeCom or DingTalk
LEAD_ASSIGNED = "lead.assigned"  # a lead got an owner (or went to the public pool)
ORDER_APPROVAL = "order.approval"  # a CRM order's OA approval changed: pending, approved, rejected, withdrawn, revoked
RULE_FIRED = "rule.fired"  # an automation rule with a send_crm_webhook action fired (hub.rules.automation)
EVENT_TYPES = (RECEIVABLE_CHANGED, ORDER_IN_ERP, TASK_DONE_IN_CHAT, LEAD_ASSIGNED, ORDER_APPROVAL, RULE_FIRED)
PING = "ping"

# Headers of every delivery (README "Webhooks back to the CRM")
SIGNATURE_HEADER = "X-Hub-Signature"  # t=<unix seconds>,v1=<hex>[,v1=<hex>…]
EVENT_HEADER = "X-Hub-Event"  # the event type
DELIVERY_HEADER = "X-Hub-Delivery"  # the event id: the same on every redelivery

__all__ = ["DELIVERY_HEADER", "EVENT_HEADER", "EVENT_TYPES", "LEAD_ASSIGNED", "ORDER_APPROVAL", "ORDER_IN_ERP", "PING",
           "RECEIVABLE_CHANGED", "RULE_FIRED", "SIGNATURE_HEADER", "TASK_DONE_IN_CHAT"]
