"""The report pages' forms that change things (replay, retry, resolve): POST, CSRF-checked, audited.

CSRF works as for sign-out (:mod:`hub.web.signin`): a signed-in browser's form carries
``csrf`` = :func:`hub.web.signin.session_csrf` of its session cookie, a value another site
cannot read or compute; a post whose ``csrf`` does not match is refused (403) before
anything is done. A request with an API token (``Authorization: Bearer``) carries no
ambient credential a third-party page could ride on, so it needs no CSRF field. The
session cookie is also ``SameSite=Lax``, which keeps it off cross-site POSTs in the first
place; the token is the second lock.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from hub.access import Principal
from hub.access.secrets import same
from hub.web.auth import SESSION_COOKIE
from hub.web.signin import read_form, session_csrf


def csrf_field(request: Request) -> str:
    """The ``csrf`` value this browser's forms carry (empty without a session cookie)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return session_csrf(cookie) if cookie else ""


async def checked_form(request: Request, principal: Principal) -> dict[str, str]:
    """The posted form of ``principal``, or 403 when a browser's CSRF token is missing or wrong."""
    fields = await read_form(request)
    if principal.via != "token":
        expected = csrf_field(request)
        if not expected or not same(expected, fields.get("csrf", "")):
            raise HTTPException(403, "the form has expired: reload the page and try again")
    return fields


def actor_of(principal: Principal) -> str:
    """How the audit names the person acting on a page: their credential and name."""
    return f"web:{principal.ref}:{principal.name}"[:100]
