"""An organization's principals: who has been seen, and cutting off those who left
(issue 22, item 1; docs/threat-model.md "People and roles").

Principals are not enrolled: the identity provider (or `accord token issue`) makes
them, and a principal is known here by its organization and token subject (`sub`).
Three tables, all read in one statement on every authenticated request (`standing`):

- `principal_status`: an admin's decision (deactivated, reactivated), written
  only by the endpoints below and audited; with no row, a principal is active.
- `revoked_tokens`: tokens revoked one by one by their `jti`, kept until every
  token that could carry the id has expired.
- `principal_sightings`: when each principal was first and last seen, and the id of
  the last token it used; written at most once a minute per principal
  (`SIGHTING_GRANULARITY`), so the list's `last_seen_at` is up to a minute early.

Nothing is cached in the process: several app nodes share one database, and each
request reads the current rows, so a deactivation or a revocation holds on the
very next request on every node. Keys stay with the organization: deactivating a
person touches no key (a colleague continues with no re-keying).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base
from service.errors import rule_violation
from service.organizations.models import (
    Organization,
    PrincipalSighting,
    PrincipalStatus,
    RevokedToken,
)
from service.sectors import Sector
from service.web.pagination import PageRequest, Position

SIGHTING_GRANULARITY: Final = timedelta(seconds=60)

_ORGS = Base.metadata.tables[Organization.__tablename__]
_STATUS = Base.metadata.tables[PrincipalStatus.__tablename__]
_SIGHTINGS = Base.metadata.tables[PrincipalSighting.__tablename__]
_REVOKED = Base.metadata.tables[RevokedToken.__tablename__]

# On the driver (service/db/direct.py): every authenticated request runs it.
_STANDING: Final = DirectStatement(
    select(
        _ORGS.c.sector,
        _ORGS.c.active,
        select(_STATUS.c.active)
        .where(_STATUS.c.org_id == _ORGS.c.id, _STATUS.c.subject == bindparam("subject"))
        .scalar_subquery(),
        select(_REVOKED.c.id)
        .where(_REVOKED.c.org_id == _ORGS.c.id, _REVOKED.c.token_id == bindparam("token_id"))
        .scalar_subquery(),
        select(_SIGHTINGS.c.last_seen_at)
        .where(_SIGHTINGS.c.org_id == _ORGS.c.id, _SIGHTINGS.c.subject == bindparam("subject"))
        .scalar_subquery(),
    ).where(_ORGS.c.id == bindparam("org_id"))
)


async def standing(
    session: AsyncSession, *, org_id: uuid.UUID, subject: str, token_id: str, at: datetime
) -> Sector | None:
    """The organization's sector if it is active, the principal is not deactivated
    and the token is not revoked; else None (service/auth/dependencies.py: 401).
    Records the sighting when the last one is older than `SIGHTING_GRANULARITY`."""
    rows = await direct.fetch(
        session, _STANDING, {"org_id": org_id, "subject": subject, "token_id": token_id}
    )
    if not rows:
        return None
    sector, org_active, principal_active, revoked, last_seen = rows[0]
    if not org_active or principal_active is False or revoked is not None:
        return None
    if last_seen is None or last_seen <= at - SIGHTING_GRANULARITY:
        await _record_sighting(session, org_id=org_id, subject=subject, token_id=token_id, at=at)
    return Sector(sector)


def _lock_key(org_id: uuid.UUID, subject: str) -> int:
    digest = hashlib.sha256(f"{org_id}|{subject}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


async def _record_sighting(
    session: AsyncSession, *, org_id: uuid.UUID, subject: str, token_id: str, at: datetime
) -> None:
    """Bookkeeping inside the request's transaction (kept only if it commits). On
    PostgreSQL the row lock of an update is held until the request ends, so a
    principal's other requests (on any node) must not wait for a long one: each
    writer first takes a transaction-scoped advisory lock without waiting, and
    skips the update if another request holds it (that one is updating anyway).
    SQLite serializes writers already (BEGIN IMMEDIATE)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        got = await session.scalar(
            text(
                "SELECT pg_try_advisory_xact_lock("
                "('principal_sightings'::regclass)::oid::int, :key)"
            ),
            {"key": _lock_key(org_id, subject)},
        )
        if not got:
            return
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "subject": subject,
        "first_seen_at": at,
        "last_seen_at": at,
        "last_token_id": token_id,
    }
    dialect_insert = postgresql.insert if postgres else sqlite.insert
    stmt = dialect_insert(_SIGHTINGS).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_SIGHTINGS.c.org_id, _SIGHTINGS.c.subject],
        set_={"last_seen_at": at, "last_token_id": token_id},
        where=_SIGHTINGS.c.last_seen_at < at,
    )
    await session.execute(stmt)


def _check_subject(subject: str) -> None:
    # The rule the token layer applies to `sub` (service/auth/tokens.py).
    if not subject or len(subject) > 255 or not subject.isprintable():
        raise rule_violation(("/subject", "a token subject: 1 to 255 printable characters"))


async def list_principals(
    session: AsyncSession, *, principal: Principal, org_id: uuid.UUID, page: PageRequest
) -> tuple[list[tuple[str, PrincipalSighting | None, PrincipalStatus | None]], Position | None]:
    """Every principal the organization's admins decided about or the service has
    seen, by subject; a page at a time, oldest first."""
    require_own_org(principal, org_id, Role.org_admin)
    seen = {
        row.subject: row
        for row in (
            await session.scalars(
                select(PrincipalSighting).where(PrincipalSighting.org_id == org_id)
            )
        ).all()
    }
    decided = {
        row.subject: row
        for row in (
            await session.scalars(select(PrincipalStatus).where(PrincipalStatus.org_id == org_id))
        ).all()
    }
    entries = []
    for subject in seen.keys() | decided.keys():
        sighting, status = seen.get(subject), decided.get(subject)
        first = min(
            t for t in (sighting and sighting.first_seen_at, status and status.changed_at) if t
        )
        row_id = (sighting or status).id  # type: ignore[union-attr]
        entries.append((first, row_id, subject, sighting, status))
    entries.sort(key=lambda e: (e[0], e[1]))
    if page.after is not None:
        after = page.after
        entries = [e for e in entries if (e[0], e[1]) > (after.at, after.id)]
    position = None
    if len(entries) > page.limit:
        last = entries[page.limit - 1]
        position = Position(at=last[0], id=last[1])
    return [(e[2], e[3], e[4]) for e in entries[: page.limit]], position


async def set_active(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    subject: str,
    active: bool,
    clock: Clock,
) -> PrincipalStatus:
    """Deactivate (or reactivate) a principal of the admin's own organization, by
    subject, whether or not it was ever seen (a token may exist that was never
    used). Audited; idempotent (a repeat changes nothing and writes no entry). An
    admin cannot deactivate itself (an organization could lock out its last admin)."""
    require_own_org(principal, org_id, Role.org_admin)
    _check_subject(subject)
    if not active and subject == principal.subject:
        raise rule_violation(("/subject", "an admin cannot deactivate itself"))
    row = (
        await session.scalars(
            select(PrincipalStatus)
            .where(PrincipalStatus.org_id == org_id, PrincipalStatus.subject == subject)
            .with_for_update()
        )
    ).first()
    if row is not None and row.active is active:
        return row
    if row is None and active:
        # Never deactivated: nothing to reactivate, and nothing to record.
        return PrincipalStatus(
            id=uuid.uuid4(),
            org_id=org_id,
            subject=subject,
            active=True,
            changed_at=clock.now(),
            changed_by=principal.label,
        )
    now = clock.now()
    if row is None:
        row = PrincipalStatus(id=uuid.uuid4(), org_id=org_id, subject=subject)
        session.add(row)
    row.active = active
    row.changed_at = now
    row.changed_by = principal.label
    await session.flush()
    await append(
        session,
        AuditEvent(
            "principal.reactivated" if active else "principal.deactivated",
            principal,
            counterpart_org_id=org_id,
            details={"subject": subject},
        ),
        clock=clock,
    )
    return row


async def revoke_token(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    token_id: str,
    keep_for: timedelta,
    clock: Clock,
) -> RevokedToken:
    """Revoke one token of the organization by its `jti`, from the next request on.
    Kept for `keep_for` (the longest a token may live, plus the leeway), after which
    no token with that id can still be valid. Audited; idempotent."""
    require_own_org(principal, org_id, Role.org_admin)
    if not token_id or len(token_id) > 255 or not token_id.isprintable():
        raise rule_violation(("/jti", "a token id: 1 to 255 printable characters"))
    row = (
        await session.scalars(
            select(RevokedToken).where(
                RevokedToken.org_id == org_id, RevokedToken.token_id == token_id
            )
        )
    ).first()
    if row is not None:
        return row
    now = clock.now()
    row = RevokedToken(
        id=uuid.uuid4(),
        org_id=org_id,
        token_id=token_id,
        revoked_at=now,
        revoked_by=principal.label,
        keep_until=now + keep_for,
    )
    session.add(row)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "token.revoked", principal, counterpart_org_id=org_id, details={"jti": token_id}
        ),
        clock=clock,
    )
    return row


async def sighting_of(
    session: AsyncSession, *, org_id: uuid.UUID, subject: str
) -> PrincipalSighting | None:
    return (
        await session.scalars(
            select(PrincipalSighting).where(
                PrincipalSighting.org_id == org_id, PrincipalSighting.subject == subject
            )
        )
    ).first()
