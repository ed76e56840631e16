"""HTTP endpoints for an organization's principals (issue 22; docs/threat-model.md
"People and roles"): list them with last-seen times, deactivate and reactivate by
subject, revoke one token by its `jti`. Organization admins only, of their own
organization (another organization's id answers 404, as a random one)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request

from service.auth.dependencies import CurrentPrincipal
from service.organizations import principals as principal_service
from service.organizations.models import PrincipalSighting, PrincipalStatus
from service.organizations.schemas import (
    PrincipalChange,
    PrincipalPage,
    PrincipalRead,
    TokenRevoke,
    TokenRevoked,
)
from service.settings import Settings
from service.web.deps import AppClock, DbSession
from service.web.params import Pages
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/organizations/{org_id}", tags=["organizations"])


def principal_read(
    subject: str, sighting: PrincipalSighting | None, status: PrincipalStatus | None
) -> PrincipalRead:
    return PrincipalRead(
        subject=subject,
        active=status.active if status is not None else True,
        first_seen_at=sighting.first_seen_at if sighting else None,
        last_seen_at=sighting.last_seen_at if sighting else None,
        last_token_id=sighting.last_token_id if sighting else None,
        changed_at=status.changed_at if status is not None else None,
        changed_by=status.changed_by if status is not None else None,
    )


@router.get("/principals", responses=ALL_PROBLEMS)
async def list_principals(
    org_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession, pages: Pages
) -> PrincipalPage:
    """Every principal of the organization that was seen or (de)activated, with the
    time of its last successful request (up to a minute early)."""
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id), "principals", {"org_id": str(org_id)}
    )
    rows, position = await principal_service.list_principals(
        session, principal=principal, org_id=org_id, page=pages.page(binding)
    )
    return PrincipalPage(
        items=[principal_read(*row) for row in rows],
        next_cursor=pages.next_cursor(position, binding),
    )


async def _change(
    session: DbSession,
    principal: CurrentPrincipal,
    org_id: uuid.UUID,
    subject: str,
    *,
    active: bool,
    clock: AppClock,
) -> PrincipalRead:
    status = await principal_service.set_active(
        session, principal=principal, org_id=org_id, subject=subject, active=active, clock=clock
    )
    sighting = await principal_service.sighting_of(session, org_id=org_id, subject=subject)
    return principal_read(subject, sighting, status)


@router.post("/principals/deactivate", responses=ALL_PROBLEMS)
async def deactivate_principal(
    org_id: uuid.UUID,
    body: PrincipalChange,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> PrincipalRead:
    """Cut a principal off from its very next request, on every app node, whatever
    token it holds (audited: `principal.deactivated`). Idempotent."""
    return await _change(session, principal, org_id, body.subject, active=False, clock=clock)


@router.post("/principals/reactivate", responses=ALL_PROBLEMS)
async def reactivate_principal(
    org_id: uuid.UUID,
    body: PrincipalChange,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> PrincipalRead:
    """Let a deactivated principal in again (audited: `principal.reactivated`)."""
    return await _change(session, principal, org_id, body.subject, active=True, clock=clock)


@router.post("/revoked-tokens", responses=ALL_PROBLEMS)
async def revoke_token(
    org_id: uuid.UUID,
    body: TokenRevoke,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> TokenRevoked:
    """Revoke one staff token of the organization by its `jti`, from the next
    request on (audited: `token.revoked`). Idempotent."""
    settings: Settings = request.app.state.settings
    keep_for = timedelta(
        seconds=settings.staff_token_max_lifetime_seconds + 2 * settings.jwt_leeway_seconds
    )
    row = await principal_service.revoke_token(
        session,
        principal=principal,
        org_id=org_id,
        token_id=body.jti,
        keep_for=keep_for,
        clock=clock,
    )
    return TokenRevoked(jti=row.token_id, revoked_at=row.revoked_at, revoked_by=row.revoked_by)
