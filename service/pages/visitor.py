"""Who is looking at a page: the session cookie, and the checks on every form.

The session cookie holds a random secret; the service keeps only its hash, on the
access link's row (service/subjects/access_links.py), and reads the link on every
request, so a link its caseworker ended stops working on the next request. The
cookie is HttpOnly, SameSite=Strict, Path=/s, Secure in production, and expires
with the link.

Forms (CSRF): every form carries a token derived from the session secret (HMAC,
so it is bound to this one session and needs no storage), compared in constant
time. Before the token, the request's own provenance is checked: a
`Sec-Fetch-Site` other than `same-origin`, or an `Origin` other than the service's
own, is refused. (The pages send `Referrer-Policy: no-referrer`, so browsers send
`Origin: null` on their own same-origin forms; `null` is therefore not evidence
either way and the token decides.) A refused form changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request

from service.auth.principals import SurvivorPrincipal
from service.organizations import service as org_service
from service.pages.site import (
    SESSION_COOKIE,
    FormRefusedError,
    PageNotFoundError,
    SessionEndedError,
    site_of,
)
from service.subjects import access_links
from service.subjects.models import AccessLink
from service.web.deps import AppClock, DbSession

CSRF_FIELD = "csrf"
CSRF_LABEL = b"accord/pages/csrf/v1"
MAX_FORM_FIELDS = 8


@dataclass(frozen=True)
class Visitor:
    link: AccessLink
    survivor: SurvivorPrincipal
    secret: str

    @property
    def csrf_token(self) -> str:
        mac = hmac.new(self.secret.encode("ascii"), CSRF_LABEL, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


async def current_visitor(request: Request, session: DbSession, clock: AppClock) -> Visitor:
    secret = request.cookies.get(SESSION_COOKIE)
    link = await access_links.session_link(session, secret=secret, clock=clock)
    if (
        link is None
        or secret is None
        or await org_service.active_sector(session, link.owner_org_id) is None
    ):
        raise SessionEndedError()
    return Visitor(link=link, survivor=access_links.survivor_of(link), secret=secret)


CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]


def _own_origin(request: Request) -> str:
    configured = site_of(request).settings.public_base_url
    if configured:
        return configured
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def provenance_ok(request: Request) -> bool:
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = _own_origin(request)
    if site_of(request).settings.public_base_url:
        return origin == own
    # Behind a TLS-terminating proxy the scheme seen here may differ; the host may not.
    return urlsplit(origin).netloc == urlsplit(own).netloc


async def checked_form(request: Request, visitor: CurrentVisitor) -> Visitor:
    """The visitor of a form that came from one of their own pages, or FormRefusedError."""
    if not provenance_ok(request):
        raise FormRefusedError()
    try:
        fields = parse_qs(
            (await request.body()).decode("utf-8"),
            max_num_fields=MAX_FORM_FIELDS,
            strict_parsing=False,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormRefusedError() from exc
    sent = fields.get(CSRF_FIELD, [])
    if len(sent) != 1 or not hmac.compare_digest(
        sent[0].encode("ascii", "replace"), visitor.csrf_token.encode("ascii")
    ):
        raise FormRefusedError()
    return visitor


FormVisitor = Annotated[Visitor, Depends(checked_form)]


def object_id(text: str, lang: str | None = None) -> uuid.UUID:
    """A path's id, or the same not-found page as for an id that is someone else's."""
    try:
        value = uuid.UUID(text)
    except ValueError as exc:
        raise PageNotFoundError(lang) from exc
    if str(value) != text.lower():
        raise PageNotFoundError(lang)
    return value
