"""Who may open the oversight pages (docs/oversight.md): staff of the oversight
sector, and the auditors of a collaboration's member organizations.

Staff hold bearer tokens (an identity provider's, or `accord token issue` in
development); a browser cannot send one on a link. So the sign-in page takes the
token once, in a POST form (never in a URL), verifies it exactly as the API does
(signature, lifetime, the organization active, the principal not deactivated, the
token not revoked) and answers with a session cookie `accord_o`:

- the cookie holds the token's subject, organization, id (`jti`), claimed roles, a
  random nonce and an expiry (the token's own expiry or 30 minutes, whichever
  comes first), authenticated with HMAC-SHA256 under a key derived from the
  service's cursor secret with a label of its own (nothing is stored, so every app
  node accepts it, and no other use of that secret can produce it);
- it is HttpOnly, SameSite=Strict, Path=/o, Secure in production or behind https,
  and never holds the token itself;
- every request re-reads the principal's standing, like the API: revoking the
  token (`POST /v1/tokens/revoke`, or deactivating the principal or organization)
  ends the session on its next request;
- forms (sign-out) carry a token derived from the cookie (HMAC with a label), and
  the sign-in form one derived from a pre-session cookie set with the form, so
  another site can neither post as the officer nor sign a browser in as someone
  else; a `Sec-Fetch-Site` or `Origin` from elsewhere is refused first.

A failed sign-in counts against the address's failed-authentication limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.dependencies import StaffStandingLike, TokenVerifierLike
from service.auth.principals import Principal, Role, roles_from_claim
from service.collaborations.models import Collaboration, Membership
from service.errors import RateLimitedError, UnauthorizedError
from service.pages.site import PageError, TooManyTriesError, site_of
from service.pages.visitor import provenance_ok
from service.sectors import Sector
from service.web.deps import AppClock, DbSession
from service.web.ratelimit import Limit, client_address, limits_of

COOKIE_PATH = "/o"
SESSION_COOKIE = "accord_o"
PRE_COOKIE = "accord_o_pre"
SESSION_SECONDS = 30 * 60
PRE_SECONDS = 15 * 60
CSRF_FIELD = "csrf"
TOKEN_FIELD = "token"  # noqa: S105 - a form field's name
MAX_FORM_FIELDS = 8
MAX_TOKEN_CHARS = 8192

_SESSION_LABEL = b"accord/oversight/session/v1"
_SEEN_LABEL = b"accord/oversight/seen/v1"
_CSRF_LABEL = b"accord/oversight/csrf/v1"
_SIGN_IN_LABEL = b"accord/oversight/sign-in/v1"


class OversightNotFoundError(PageError):
    """A collaboration the viewer may not see, or none: one page for both."""

    template = "oversight_not_found.html"


class SignInNeededError(PageError):
    """No session, or one that ended: the way to sign in."""

    status = 401
    template = "oversight_signed_out.html"


class OversightFormRefusedError(PageError):
    status = 403
    template = "oversight_form_refused.html"


class NotForYouError(PageError):
    """A valid token whose principal is neither oversight staff nor an auditor."""

    status = 403
    template = "oversight_not_for_you.html"


class OversightTooManyError(TooManyTriesError):
    template = "oversight_too_many.html"


def derived_key(request: Request, label: bytes) -> bytes:
    secret: bytes = request.app.state.keyring.cursor_secret
    return hmac.new(secret, label, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, payload: dict[str, Any]) -> str:
    """`payload` as compact JSON with its HMAC: readable, but not forgeable."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest())}"


def unseal(key: bytes, text: str | None) -> dict[str, Any] | None:
    """The payload of a value `seal` made with `key`, or None for anything else."""
    if not text or len(text) > 4096 or text.count(".") != 1:
        return None
    body_text, mac_text = text.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=site_of(request).settings.pages_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def forget_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        secure=site_of(request).settings.pages_cookie_secure,
        httponly=True,
        samesite="strict",
    )


def may_use_pages(principal: Principal) -> bool:
    """Oversight staff (any role of theirs), or an auditor of any organization."""
    return bool(principal.roles) and (
        principal.sector is Sector.oversight or principal.has_any(Role.auditor)
    )


def sees_every_collaboration(principal: Principal) -> bool:
    return principal.sector is Sector.oversight and bool(principal.roles)


async def may_see(session: AsyncSession, principal: Principal, collab_id: uuid.UUID) -> bool:
    """Oversight: every collaboration; an auditor: those their organization is a
    member of now."""
    if sees_every_collaboration(principal):
        found = await session.scalar(select(Collaboration.id).where(Collaboration.id == collab_id))
        return found is not None
    if not principal.has_any(Role.auditor):
        return False
    member = await session.scalar(
        select(
            exists().where(
                Membership.collaboration_id == collab_id,
                Membership.org_id == principal.org_id,
                Membership.removed_at.is_(None),
            )
        )
    )
    return bool(member)


async def visible_collaborations(
    session: AsyncSession, principal: Principal
) -> list[Collaboration]:
    stmt = select(Collaboration).order_by(Collaboration.name, Collaboration.id)
    if not sees_every_collaboration(principal):
        stmt = stmt.where(
            exists().where(
                Membership.collaboration_id == Collaboration.id,
                Membership.org_id == principal.org_id,
                Membership.removed_at.is_(None),
            )
        )
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True)
class Staff:
    """The signed-in officer: the principal as the API would see it now."""

    principal: Principal
    cookie: str
    expires_at: datetime
    csrf_key: bytes

    @property
    def csrf_token(self) -> str:
        return _b64(hmac.new(self.csrf_key, self.cookie.encode(), hashlib.sha256).digest())


async def _standing(
    request: Request, session: AsyncSession, org: uuid.UUID, sub: str, jti: str, at: datetime
) -> Sector | None:
    standing: StaffStandingLike = request.app.state.staff_standing
    return await standing(session, org_id=org, subject=sub, token_id=jti, at=at)


def _session_fields(payload: dict[str, Any]) -> tuple[str, uuid.UUID, str, list[str], int] | None:
    try:
        sub, org, jti, roles, exp = (payload[k] for k in ("sub", "org", "jti", "roles", "exp"))
        if not (isinstance(sub, str) and isinstance(jti, str) and isinstance(exp, int)):
            return None
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return None
        return sub, uuid.UUID(str(org)), jti, roles, exp
    except (KeyError, ValueError):
        return None


async def current_staff(request: Request, session: DbSession, clock: AppClock) -> Staff:
    """The session's principal, re-checked now; else the sign-in page (401)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    fields = _session_fields(unseal(derived_key(request, _SESSION_LABEL), cookie) or {})
    now = clock.now()
    if cookie is None or fields is None or fields[4] <= int(now.timestamp()):
        raise SignInNeededError()
    sub, org, jti, roles, exp = fields
    sector = await _standing(request, session, org, sub, jti, now)
    if sector is None:
        raise SignInNeededError()
    principal = Principal(
        subject=sub, org_id=org, sector=sector, roles=roles_from_claim(roles, sector)
    )
    if not may_use_pages(principal):
        raise NotForYouError()
    return Staff(
        principal=principal,
        cookie=cookie,
        expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
        csrf_key=derived_key(request, _CSRF_LABEL),
    )


CurrentStaff = Annotated[Staff, Depends(current_staff)]


async def form_fields(request: Request) -> dict[str, list[str]]:
    """A form posted from one of these pages (provenance first), or a refusal."""
    if not provenance_ok(request):
        raise OversightFormRefusedError()
    try:
        return parse_qs(
            (await request.body()).decode("utf-8"),
            max_num_fields=MAX_FORM_FIELDS,
            strict_parsing=False,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise OversightFormRefusedError() from exc


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name, [])
    return values[0] if len(values) == 1 else None


def _same(sent: str | None, expected: str) -> bool:
    return sent is not None and hmac.compare_digest(
        sent.encode("utf-8", "replace"), expected.encode("ascii")
    )


async def checked_staff_form(request: Request, staff: CurrentStaff) -> Staff:
    if not _same(_one(await form_fields(request), CSRF_FIELD), staff.csrf_token):
        raise OversightFormRefusedError()
    return staff


StaffForm = Annotated[Staff, Depends(checked_staff_form)]


# --- signing in -----------------------------------------------------------------


def new_pre_session() -> str:
    return secrets.token_urlsafe(32)


def sign_in_csrf(request: Request, pre: str) -> str:
    mac = hmac.new(derived_key(request, _SIGN_IN_LABEL), pre.encode(), hashlib.sha256)
    return _b64(mac.digest())


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    cookie: str
    max_age: int


async def _failed(request: Request, lang: str) -> None:
    try:
        await limits_of(request).hit(Limit.failed_auth, client_address(request))
    except RateLimitedError as exc:
        raise OversightTooManyError(lang, exc.headers.get("Retry-After", "60")) from exc


async def sign_in(
    request: Request, session: AsyncSession, fields: dict[str, list[str]], now: datetime, lang: str
) -> SignedIn | None:
    """The session for a token posted with the sign-in form's own CSRF token; None
    (counted as a failed authentication) for a token the API would refuse."""
    pre = request.cookies.get(PRE_COOKIE)
    if pre is None or not _same(_one(fields, CSRF_FIELD), sign_in_csrf(request, pre)):
        raise OversightFormRefusedError(lang)
    token = (_one(fields, TOKEN_FIELD) or "").strip()
    verifier: TokenVerifierLike = request.app.state.token_verifier
    try:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise UnauthorizedError("no token")
        claims = await verifier.verify_staff(token)
    except UnauthorizedError:
        await _failed(request, lang)
        return None
    sector = await _standing(request, session, claims.org, claims.sub, claims.jti, now)
    exp = claims.exp
    if sector is None or exp is None:
        await _failed(request, lang)
        return None
    principal = Principal(
        subject=claims.sub,
        org_id=claims.org,
        sector=sector,
        roles=roles_from_claim(claims.roles, sector),
    )
    if not may_use_pages(principal):
        raise NotForYouError(lang)
    until = min(exp, int(now.timestamp()) + SESSION_SECONDS)
    payload = {
        "sub": claims.sub,
        "org": str(claims.org),
        "jti": claims.jti,
        "roles": list(claims.roles),
        "exp": until,
        "n": secrets.token_urlsafe(16),
    }
    cookie = seal(derived_key(request, _SESSION_LABEL), payload)
    return SignedIn(principal, cookie, max(1, until - int(now.timestamp())))


def seen_key(request: Request) -> bytes:
    return derived_key(request, _SEEN_LABEL)
