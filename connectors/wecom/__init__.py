"""WeCom (企业微信) connector: client, streams, mapping, writers, callbacks, sandbox.

Reading order follows the data: :mod:`.client` (HTTP, token, errors) →
:mod:`.streams` (what is read) → :mod:`.mapping` (pure WeCom ⇄ canonical) →
:mod:`.writers` (reminders out) → :mod:`.callbacks` (events in). The emulator lives in
:mod:`connectors.wecom.sandbox` and is imported explicitly by whoever starts it.
"""

from connectors.wecom.callbacks import create_callback_app
from connectors.wecom.client import CursorPage, SendOutcome, WeComClient
from connectors.wecom.mapping import (
    ReminderTask,
    build_reminder_card,
    map_directory_user,
    map_external_contact,
)
from connectors.wecom.streams import DIRECTORY, EXTERNAL_CONTACTS, STREAMS
from connectors.wecom.writers import ReminderWriter, ScheduleWriter, make_writer

__all__ = [
    "DIRECTORY",
    "EXTERNAL_CONTACTS",
    "STREAMS",
    "CursorPage",
    "ReminderTask",
    "ReminderWriter",
    "ScheduleWriter",
    "SendOutcome",
    "WeComClient",
    "build_reminder_card",
    "create_callback_app",
    "make_writer",
    "map_directory_user",
    "map_external_contact",
]
