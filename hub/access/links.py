"""Links into the hub: the sign-in entry a chat card points at, and the ``next`` path rule.

A reminder card opened inside WeCom or DingTalk must sign the salesperson in by the
platform's own code flow before showing the page. The card therefore links to the
hub's sign-in entry for that platform, ``/auth/<platform>/start?next=<path>``, which
(bound to the opening browser by a cookie) redirects to the platform's OAuth page
(WeCom) or asks the app for a 免登 code (DingTalk), and lands on ``next`` signed in.
A browser that already has a session goes straight to ``next``.

:func:`local_path` is the one rule for every ``next``: only a path on this site, so no
link can make the hub redirect somewhere else (no open redirect).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

SIGN_IN_PLATFORMS = frozenset({"wecom", "dingtalk"})
MAX_NEXT_CHARS = 500
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/_.~%?&=+-]*$")
DEFAULT_NEXT = "/customers"


def local_path(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """``value`` when it is a path on this site (``/customers/12?x=1``), else ``default``.

    Refused: absolute and scheme-relative URLs (``https://…``, ``//evil``), backslashes
    (browsers read ``/\\evil`` as ``//evil``), control characters, anything over
    MAX_NEXT_CHARS, and the sign-in pages themselves (no loop).
    """
    if not value or len(value) > MAX_NEXT_CHARS or not _SAFE_PATH.match(value) or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout", "/auth/")):
        return default
    return value


def card_link(base_url: str, platform: str | None, path: str) -> str:
    """The URL a chat card carries for ``path``: through the platform's sign-in entry when
    the card goes out on WeCom or DingTalk, else ``path`` itself."""
    base = base_url.rstrip("/")
    if platform in SIGN_IN_PLATFORMS:
        return f"{base}/auth/{platform}/start?next={quote(path, safe='/')}"
    return f"{base}{path}"
