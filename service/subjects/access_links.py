"""Survivor access links (issue 20): created by the serving organization's case
staff, opened once by the survivor, ended by the same staff at any time.

A link is three things bound to one subject of one organization:
- a bearer token for the survivor endpoints of the API (as before; `jti` = the
  link's id), checked against the link's row on every request;
- a single-use code, short-lived, carried in the URL `/s/{code}` handed to the
  survivor; only its SHA-256 is stored;
- once the code is exchanged, a session: a random secret in an HttpOnly cookie,
  only its SHA-256 stored, valid until the link expires or is revoked.

Every use is audited (`access_link.used`, `.refused`, `.revoked`) with the link's
id, never the code, the token or the session secret. So is every misuse of a link
(issue 22, item 4): its token on a staff endpoint, its token or session after it
expired or was ended, a request for a record that is not the survivor's. Those
requests are refused and their transaction rolled back, so the entry is written
after it, in a transaction of its own (`record_misuse`, through
service/auth/link_misuse.py), with a reason code and nothing the request carried;
the caseworker reads them with `refusals`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.audit.models import AuditEntry
from service.auth.link_misuse import EXPIRED, REVOKED, note_misuse, note_survivor
from service.auth.principals import Principal, SurvivorPrincipal
from service.auth.tokens import SURVIVOR_TYP, encode_eddsa
from service.clock import Clock
from service.crypto import Signer, key_id_for
from service.db.engine import session_scope
from service.errors import NotFoundError, rule_violation
from service.settings import Settings
from service.subjects.erasure import require_not_erased
from service.subjects.models import AccessLink
from service.subjects.service import get_owned
from service.web.pagination import PageRequest, Position

CODE_BYTES = 16  # 128 bits: 26 characters of lowercase base32, easy to copy from paper
SESSION_BYTES = 32


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def new_code() -> str:
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class IssuedLink:
    link: AccessLink
    token: str
    code: str


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    subject_id: uuid.UUID,
    lifetime_seconds: int,
    settings: Settings,
    signer: Signer,
    clock: Clock,
) -> IssuedLink:
    """A link for the survivor, bound to this subject: its token, and its code that
    can be exchanged for a session once within `access_link_code_seconds`."""
    subject = require_not_erased(
        await get_owned(session, principal=principal, subject_id=subject_id, share=True)
    )
    cap = settings.survivor_token_max_lifetime_seconds
    if not 60 <= lifetime_seconds <= cap:
        raise rule_violation(("/lifetime_seconds", f"between 60 and {cap} seconds"))
    now = clock.now()
    expires_at = now + timedelta(seconds=lifetime_seconds)
    code = new_code()
    link = AccessLink(
        id=uuid.uuid4(),
        subject_id=subject.id,
        owner_org_id=subject.owner_org_id,
        created_at=now,
        created_by=principal.label,
        expires_at=expires_at,
        code_sha256=_sha256(code),
        # The code never outlives the link.
        code_expires_at=min(expires_at, now + timedelta(seconds=settings.access_link_code_seconds)),
    )
    session.add(link)
    await session.flush()
    token = encode_eddsa(
        signer,
        kid=key_id_for(signer.public_key),
        typ=SURVIVOR_TYP,
        claims={
            "iss": settings.survivor_jwt_issuer,
            "aud": settings.survivor_jwt_audience,
            "sub": str(subject.id),
            "org": str(subject.owner_org_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": link.id.hex,
        },
    )
    await stage(
        session,
        AuditEvent(
            "access_link.created",
            principal,
            subject_ref=str(subject.id),
            details={
                "jti": link.id.hex,
                "link_id": str(link.id),
                "expires_at": expires_at.isoformat(),
                "code_expires_at": link.code_expires_at.isoformat(),
            },
        ),
        clock=clock,
    )
    return IssuedLink(link=link, token=token, code=code)


def survivor_of(link: AccessLink) -> SurvivorPrincipal:
    return SurvivorPrincipal(
        subject_id=link.subject_id, org_id=link.owner_org_id, token_id=link.id.hex
    )


def _live(link: AccessLink, now: datetime) -> bool:
    return link.revoked_at is None and now < link.expires_at


async def _audit_use(
    session: AsyncSession, link: AccessLink, action: str, details: dict[str, object], clock: Clock
) -> None:
    await stage(
        session,
        AuditEvent(
            action,
            None,
            actor_label=survivor_of(link).label,
            subject_ref=str(link.subject_id),
            # The owner's auditors see every use of its links.
            counterpart_org_id=link.owner_org_id,
            details={"link_id": str(link.id), **details},
        ),
        clock=clock,
    )


@dataclass(frozen=True)
class OpenedSession:
    link: AccessLink
    secret: str  # for the cookie only; never stored, logged or audited


async def exchange_code(session: AsyncSession, *, code: str, clock: Clock) -> OpenedSession | None:
    """The code's link with a new session, or None: unknown, used, expired or revoked
    all look the same to the caller (no oracle). A refused use of a real code is
    audited, so the caseworker can see that someone tried the link again."""
    if not code or len(code) > 64:
        return None
    link = (
        await session.scalars(select(AccessLink).where(AccessLink.code_sha256 == _sha256(code)))
    ).first()
    if link is None:
        return None
    now = clock.now()
    reason = None
    if link.code_used_at is not None:
        reason = "code_used"
    elif link.revoked_at is not None:
        reason = "revoked"
    elif now >= link.code_expires_at or now >= link.expires_at:
        reason = "expired"
    if reason is None:
        secret = base64.urlsafe_b64encode(secrets.token_bytes(SESSION_BYTES)).decode().rstrip("=")
        # Conditional: of two requests racing with the same code, one wins.
        claimed = await session.execute(
            update(AccessLink)
            .where(
                AccessLink.id == link.id,
                AccessLink.code_used_at.is_(None),
                AccessLink.revoked_at.is_(None),
            )
            .values(code_used_at=now, session_sha256=_sha256(secret))
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            await session.refresh(link)
            await _audit_use(session, link, "access_link.used", {"what": "session.opened"}, clock)
            return OpenedSession(link=link, secret=secret)
        reason = "code_used"
    await _audit_use(session, link, "access_link.refused", {"reason": reason}, clock)
    return None


async def session_link(
    session: AsyncSession, *, secret: str | None, clock: Clock
) -> AccessLink | None:
    """The live link whose session this secret is, or None (none, ended, revoked)."""
    if not secret or len(secret) > 128:
        return None
    link = (
        await session.scalars(
            select(AccessLink).where(AccessLink.session_sha256 == _sha256(secret))
        )
    ).first()
    if link is None:
        return None
    now = clock.now()
    if not _live(link, now):
        # A real session of a link that ended: audited for the caseworker (P04).
        note_misuse(link.id.hex, REVOKED if link.revoked_at is not None else EXPIRED)
        return None
    note_survivor(link.id.hex)
    return link


async def token_live(session: AsyncSession, token_id: str) -> bool:
    """A survivor token's link exists and is not revoked (its `exp` is the token's own
    check). Read on every request, so a revocation takes effect at once."""
    try:
        link_id = uuid.UUID(hex=token_id)
    except ValueError:
        return False
    link = await session.get(AccessLink, link_id, populate_existing=True)
    return link is not None and link.revoked_at is None


async def revoke(
    session: AsyncSession, *, principal: Principal, link_id: uuid.UUID, clock: Clock
) -> AccessLink:
    """End a link now: its token, its session and its unused code. Only the owner's
    staff; another organization's link is 404 like a random id. Idempotent."""
    link = (
        await session.scalars(
            select(AccessLink)
            .where(AccessLink.id == link_id, AccessLink.owner_org_id == principal.org_id)
            .with_for_update()
        )
    ).first()
    if link is None:
        raise NotFoundError()
    if link.revoked_at is not None:
        return link
    link.revoked_at = clock.now()
    link.revoked_by = principal.label
    await session.flush()
    await stage(
        session,
        AuditEvent(
            "access_link.revoked",
            principal,
            subject_ref=str(link.subject_id),
            details={"link_id": str(link.id), "jti": link.id.hex},
        ),
        clock=clock,
    )
    return link


async def record_misuse(state: Any, link_id: str, reason: str) -> None:
    """Audit a refused use of the link `link_id` (a `jti`) as `access_link.refused`
    with `reason`, in a transaction of its own (service/auth/link_misuse.py calls
    it after the refused request's transaction ended). An id that names no link
    writes nothing."""
    try:
        parsed = uuid.UUID(hex=link_id)
    except ValueError:
        return
    clock: Clock = state.clock
    async with session_scope(state.sessionmaker) as session:
        link = await session.get(AccessLink, parsed)
        if link is not None:
            await _audit_use(session, link, "access_link.refused", {"reason": reason}, clock)


@dataclass(frozen=True)
class Refusal:
    at: datetime
    link_id: uuid.UUID
    reason: str
    audit_seq: int


async def refusals(
    session: AsyncSession, *, principal: Principal, subject_id: uuid.UUID, page: PageRequest
) -> tuple[list[Refusal], Position | None]:
    """The refused uses of the subject's links, newest first, from the audit log:
    what the owner's case staff see (another organization's subject is 404). The
    page position's id is the entry's sequence number as a UUID."""
    subject = await get_owned(session, principal=principal, subject_id=subject_id)
    stmt = select(AuditEntry).where(
        AuditEntry.subject_ref == str(subject.id), AuditEntry.action == "access_link.refused"
    )
    if page.after is not None:
        stmt = stmt.where(AuditEntry.seq < page.after.id.int)
    entries = list(
        (await session.scalars(stmt.order_by(AuditEntry.seq.desc()).limit(page.limit + 1))).all()
    )
    position = None
    if len(entries) > page.limit:
        last = entries[page.limit - 1]
        position = Position(at=last.at, id=uuid.UUID(int=last.seq))
    out = []
    for entry in entries[: page.limit]:
        details = json.loads(entry.body).get("details", {})
        out.append(
            Refusal(
                at=entry.at,
                link_id=uuid.UUID(details["link_id"]),
                reason=str(details.get("reason", "")),
                audit_seq=entry.seq,
            )
        )
    return out, position
