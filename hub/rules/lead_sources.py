"""Chat contacts that match no customer become leads, after each contact stream of a chat platform.

WeCom's ``external_contacts`` stream (and any chat platform's contact stream) puts a
contact whose company matches no customer in quarantine; right after the stream, each such
contact is captured as a lead with the platform as its channel
(:func:`hub.rules.leads.leads_from_unmatched_contacts`), owned by the rep who follows the
contact when the hub knows them, else assigned by the rule table. DingTalk has no contact
stream yet; its contacts take the same path once it has one.
"""

from __future__ import annotations

import logging
from typing import Any

from hub.registry import chat_systems
from hub.rules.leads import leads_from_unmatched_contacts
from hub.runtime import HubRuntime, after_stream

log = logging.getLogger(__name__)


def leads_after_contact_sync(runtime: HubRuntime, spec: Any, stream: Any) -> None:
    """After a chat platform's contact stream: its unmatched contacts as leads."""
    if spec.system not in chat_systems():
        return
    with runtime.db.begin() as conn:
        counts = leads_from_unmatched_contacts(conn, spec.system, stream, runtime.settings.leads)
    if counts["seen"]:
        log.info("%s: %d contact(s) matching no customer taken in as leads: %s", spec.system, counts["seen"], counts)


after_stream("contact", leads_after_contact_sync)
