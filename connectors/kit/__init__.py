"""Shared plumbing of every connector, written once.

- :mod:`.http` — one HTTP exchange (:func:`send`, audited) and ONE classification of
  transport errors, status codes and non-JSON bodies into the hub's error tree;
- :mod:`.codes` — vendor code tables (:class:`CodeTable`) each connector declares on top;
- :mod:`.auth` — token/session auth as an ``httpx.Auth`` (:class:`TokenAuth`):
  single-flight refresh, refresh once on an expiry code, each exchange audited;
- :mod:`.paging` — declared paginators (offset, keyset, cursor, page number) and :func:`walk`,
  :func:`complete_ahead`, :func:`overlapping_pages` (page numbers over a list that changes),
  :class:`ReadSlots` (a client's reads in flight, the next page before a completion);
- :mod:`.orders` — the CRM order payload parsed and checked once for every ERP writer;
- :mod:`.fields` — pure field readers for mappings (text, numbers, money) raising MappingError;
- :mod:`.pacing` — :class:`Pacer`: at most N calls in a window (QPS limits, per-minute quotas);
- :mod:`.crypto` — the WXBizMsgCrypt callback scheme (WeCom, DingTalk);
- :mod:`.callbacks` — what every signed callback receiver does alike (limits, refusals,
  timestamps, the replay guard, worker threads);
- :mod:`.sandbox` — fault injection and an in-process server for the vendor sandboxes.

A connector's ``client.py`` keeps only what is its vendor's: URL shapes, the credential
hooks, the error envelope and its code table, typed results.
"""

from connectors.kit.auth import Credential, TokenAuth
from connectors.kit.codes import CodeRule, CodeTable
from connectors.kit.http import (
    DEFAULT_RETRY_AFTER_S,
    CallContext,
    OwnsHttpClient,
    json_object,
    mask_secrets_in_httpx_logs,
    parse_json,
    peek_json,
    raise_for_status,
    redact,
    send,
    status_error,
    transport_error,
)
from connectors.kit.pacing import Pacer, shared_pacer
from connectors.kit.paging import (
    CursorPaginator,
    KeysetPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Paginator,
    ReadSlots,
    complete_ahead,
    overlapping_pages,
    walk,
    watermark,
)

__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "CallContext",
    "CodeRule",
    "CodeTable",
    "Credential",
    "CursorPaginator",
    "KeysetPaginator",
    "OffsetPaginator",
    "OwnsHttpClient",
    "Pacer",
    "PageNumberPaginator",
    "Paginator",
    "ReadSlots",
    "TokenAuth",
    "complete_ahead",
    "json_object",
    "mask_secrets_in_httpx_logs",
    "overlapping_pages",
    "parse_json",
    "peek_json",
    "raise_for_status",
    "redact",
    "send",
    "shared_pacer",
    "status_error",
    "transport_error",
    "walk",
    "watermark",
]
