"""DingTalk (钉钉) connector: client, streams, mapping, writers, callbacks, sandbox.

Reading order follows the data: :mod:`.client` (both hosts, both tokens, both error
envelopes) → :mod:`.streams` (directory, completed to-dos) → :mod:`.mapping` (pure
DingTalk ⇄ canonical) → :mod:`.writers` (work notices and to-dos out) →
:mod:`.callbacks` (events in). The emulator lives in :mod:`connectors.dingtalk.sandbox`
and is imported explicitly by whoever starts it.
"""

from connectors.dingtalk.callbacks import create_callback_app
from connectors.dingtalk.client import DingTalkClient, SendResult
from connectors.dingtalk.mapping import build_todo, build_work_notice, map_directory_user, map_todo_completion
from connectors.dingtalk.streams import DIRECTORY, STREAMS, TODO_COMPLETIONS
from connectors.dingtalk.writers import NoticeWriter, TodoWriter

__all__ = [
    "DIRECTORY",
    "STREAMS",
    "TODO_COMPLETIONS",
    "DingTalkClient",
    "NoticeWriter",
    "SendResult",
    "TodoWriter",
    "build_todo",
    "build_work_notice",
    "create_callback_app",
    "map_directory_user",
    "map_todo_completion",
]
