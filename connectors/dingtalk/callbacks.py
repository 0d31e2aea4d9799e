"""Receiver for DingTalk's event subscription (HTTP push), reference §2.4.

Protocol: ``POST <url>?signature=<sha1>&timestamp=<ms>&nonce=<str>`` (official libraries
also send ``msg_signature``/``timeStamp``; either spelling is taken, each at most once)
with the JSON body ``{"encrypt": "…"}``. The signature is WXBizMsgCrypt's, the receive id
the app's **AppKey**, timestamps in milliseconds (:func:`connectors.kit.crypto.dingtalk_crypto`).
The plaintext is JSON: ``{"EventType": "check_url"}`` when the URL is registered, then
events (``user_add_org``, ``user_modify_org``, to-do changes…). Every accepted request is
answered within 1500 ms with ``{"msg_signature", "timeStamp", "nonce", "encrypt"}``, the
encrypted word ``success`` — otherwise DingTalk fails the registration (71009) or counts
the push as failed.

On top of DingTalk's checks the receiver refuses replays (the timestamp must be within
``replay_window_s`` of now; an accepted signature is refused until then) and bounds
everything before working on it (:mod:`connectors.kit.callbacks`: query ≤ 2 KB, body ≤ 1
MB read as it streams, workers per receiver); the decrypted JSON may nest at most
:data:`MAX_JSON_DEPTH` levels. Refusals answer 400 (malformed), 413 (too large) or 403
(forged, undecryptable, stale, replayed) and reach ``on_rejected``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.kit import callbacks as receiving
from connectors.kit.callbacks import CallbackLimits, Refusal
from connectors.kit.crypto import dingtalk_crypto
from hub.contracts import CallbackHooks

ACK = "success"  # the word DingTalk expects back, encrypted (§2.4)
CHECK_URL = "check_url"
# A to-do changed (ticked off) in DingTalk: {"EventType": TODO_EVENT, "taskId", "sourceId",
# "done", "operatorUnionId", "finishTime" (ms), "CorpId", "TimeStamp"}. A GUESS: the
# reference lists directory and approval events only (§2.4); the name and fields are the
# sandbox's model, and the hub acts only on an event naming a to-do it created.
TODO_EVENT = "todo_task_update"
MAX_JSON_DEPTH = 16
_MILLIS = re.compile(r"[0-9]{1,13}")


@dataclass(frozen=True)
class DingTalkQuery:
    """The signed query of one push, each part of a valid shape."""

    signature: str
    timestamp: str
    nonce: str


def _either(params: QueryParams, *names: str) -> str | None:
    given = [(name, receiving.one_parameter(params, name)) for name in names]
    present = [value for _, value in given if value is not None]
    if len(present) > 1:
        raise Refusal(400, "duplicate_parameter", f"{' and '.join(names)} both given")
    return present[0] if present else None


def read_query(params: QueryParams) -> DingTalkQuery:
    """``signature|msg_signature``, ``timestamp|timeStamp`` (ms) and ``nonce``, shape-checked."""
    signature = _either(params, "signature", "msg_signature")
    timestamp = _either(params, "timestamp", "timeStamp")
    nonce = receiving.one_parameter(params, "nonce")
    if not (signature and timestamp and nonce):
        raise Refusal(400, "missing_parameters")
    receiving.check_shape("bad_timestamp", "timestamp", timestamp, _MILLIS, "1..13 digits (milliseconds)")
    receiving.check_shape("bad_nonce", "nonce", nonce, receiving.NONCE, "1..64 printable ASCII characters")
    receiving.check_shape("malformed_signature", "signature", signature, receiving.SIGNATURE, "40 hexadecimal digits")
    return DingTalkQuery(signature, timestamp, nonce)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping as soon as it passes ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return level
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_json_object(text: str | bytes, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object of at most ``max_depth`` levels; :class:`Refusal` (400) otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Refusal(400, f"malformed_{what}", "not JSON") from exc
    if not isinstance(value, dict):
        raise Refusal(400, f"malformed_{what}", "not a JSON object")
    if _depth(value, max_depth) > max_depth:
        raise Refusal(400, f"malformed_{what}", f"nested deeper than {max_depth} levels")
    return value


class _Receiver(receiving.SignedReceiver):
    """The checks, hand-over and encrypted ``success`` reply of one DingTalk app's pushes."""

    detail_parameters = ("timestamp", "timeStamp", "nonce")

    async def handle(self, request: Request) -> Response:
        """Check the query and the time, read the body, do the rest in a worker."""
        query = read_query(request.query_params)
        sent_at = self.check_time(query.timestamp)
        body = await self.body(request)
        return await self.in_worker(self.receive, query, sent_at, body)

    def receive(self, query: DingTalkQuery, sent_at: float, body: bytes) -> Response:
        """Open ``{"encrypt"}``, verify, decrypt, parse, refuse replays, hand over, answer."""
        envelope = parse_json_object(body, "body", max_depth=2)
        encrypt = envelope.get("encrypt")
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise Refusal(400, "missing_encrypt")
        if not receiving.BASE64.fullmatch(encrypt.strip()):
            raise Refusal(400, "malformed_encrypt", "encrypt is not base64")
        plaintext = self.decrypt(query.signature, query.timestamp, query.nonce, encrypt.strip())
        event = parse_json_object(plaintext, "event")
        if not self.hand_over(query.signature.lower(), sent_at, event):
            return Response(status_code=500)  # no "success": DingTalk counts the push as failed
        sealed = self.crypto.seal(ACK, nonce=query.nonce, timestamp=self.crypto.now_timestamp(self.now()))
        return JSONResponse({"msg_signature": sealed.signature, "timeStamp": sealed.timestamp,
                             "nonce": sealed.nonce, "encrypt": sealed.encrypt})


def create_callback_app(
    *, token: str, aes_key: str, app_key: str, hooks: CallbackHooks, replay_window_s: float = 300,
    now: Callable[[], float] = time.time, path: str = "/", limits: CallbackLimits | None = None,
) -> Starlette:
    """The ASGI receiver of one DingTalk app's event subscription.

    ``token`` and ``aes_key`` are the subscription's settings (developer console → 事件订阅);
    ``app_key`` is the receive id. ``hooks.on_event`` gets each decrypted event (``check_url``
    included) as a dict in a worker thread; it must return well within DingTalk's 1500 ms.
    """
    receiver = _Receiver(dingtalk_crypto(token, aes_key, app_key), hooks, replay_window_s, now,
                         limits or CallbackLimits())
    return Starlette(routes=[Route(path, receiver.endpoint, methods=["POST"])])


__all__ = ["ACK", "CHECK_URL", "TODO_EVENT", "DingTalkQuery", "create_callback_app", "parse_json_object", "read_query"]
