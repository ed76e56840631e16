"""FastAPI dependencies as Annotated aliases that name the right (STYLE.md rule 2).

Authentication reads the bearer token from the Authorization header only (never a
query string or cookie: those end up in logs). The organization, the principal's
standing and the token's revocation are read on every request, so a deactivated
organization or principal, or a revoked token, is locked out at once on every app
node (SECURITY-TESTS A14, docs/threat-model.md P01); the sector comes from the
organization's record, never from the token, and a role outside that sector grants
nothing (P02).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.link_misuse import (
    EXPIRED,
    REVOKED,
    STAFF_ENDPOINT,
    note_misuse,
    note_survivor,
)
from service.auth.principals import Principal, Role, SurvivorPrincipal, roles_from_claim
from service.auth.tokens import SURVIVOR_TYP, TokenRejectedError, read_header
from service.clock import Clock
from service.errors import ForbiddenError, UnauthorizedError
from service.sectors import Sector
from service.web.deps import DbSession
from service.web.ratelimit import Limit, client_address, limits_of


class StaffClaimsLike(Protocol):
    @property
    def sub(self) -> str: ...
    @property
    def org(self) -> uuid.UUID: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def jti(self) -> str: ...
    @property
    def exp(self) -> int | None: ...


class SurvivorClaimsLike(Protocol):
    @property
    def subject(self) -> uuid.UUID: ...
    @property
    def org(self) -> uuid.UUID: ...
    @property
    def jti(self) -> str: ...


class TokenVerifierLike(Protocol):
    async def verify_staff(self, token: str) -> StaffClaimsLike: ...
    async def verify_survivor(self, token: str) -> SurvivorClaimsLike: ...
    async def survivor_token_id(self, token: str) -> str | None: ...


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise UnauthorizedError("Send a bearer token in the Authorization header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or " " in token.strip():
        raise UnauthorizedError("Send a bearer token in the Authorization header")
    return token.strip()


def _verifier(request: Request) -> TokenVerifierLike:
    verifier: TokenVerifierLike = request.app.state.token_verifier
    return verifier


class ActiveSectorLike(Protocol):
    """The organization's sector if it is active, else None (service/app.py hands
    in service/organizations/service.py `active_sector`: the organizations domain
    sits above auth in the layers)."""

    async def __call__(self, session: AsyncSession, org_id: uuid.UUID) -> Sector | None: ...


async def _active_org(request: Request, session: AsyncSession, org_id: uuid.UUID) -> Sector:
    """Read on every request: a deactivated organization is locked out at once (A14).
    Returns its sector, from its record (never from the token)."""
    active_sector: ActiveSectorLike = request.app.state.active_sector
    sector = await active_sector(session, org_id)
    if sector is None:
        raise UnauthorizedError("The token's organization is unknown or inactive")
    return sector


class StaffStandingLike(Protocol):
    """The sector of the token's organization if the organization is active, the
    principal (organization and `sub`) not deactivated and the token (`jti`) not
    revoked; else None. service/app.py hands in service/organizations/principals.py
    `standing`, one statement read on every request (issue 22): a deactivation or a
    revocation holds on the very next request on every app node, with no cache."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        org_id: uuid.UUID,
        subject: str,
        token_id: str,
        at: datetime,
    ) -> Sector | None: ...


async def _staff_standing(
    request: Request, session: AsyncSession, claims: StaffClaimsLike
) -> Sector:
    standing: StaffStandingLike = request.app.state.staff_standing
    clock: Clock = request.app.state.clock
    sector = await standing(
        session, org_id=claims.org, subject=claims.sub, token_id=claims.jti, at=clock.now()
    )
    if sector is None:
        raise UnauthorizedError(
            "The token's organization is unknown or inactive, its principal was "
            "deactivated, or the token was revoked"
        )
    return sector


class _FailedAuthentication:
    """Counts a failed authentication against the client's address (G07). Over the
    limit, a failure is answered 429 with Retry-After instead of 401; a valid token
    is never refused by it, so one noisy client cannot lock out the colleagues who
    share its address."""

    def __init__(self, request: Request) -> None:
        self._limits = limits_of(request)
        self._address = client_address(request)

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and issubclass(kind, UnauthorizedError):
            await self._limits.hit(Limit.failed_auth, self._address)


async def _note_survivor_token(request: Request, token: str) -> None:
    """A survivor's token on an endpoint for staff: refused (its `typ` is wrong), and
    noted to be audited for the link's caseworker (service/auth/link_misuse.py)."""
    try:
        if read_header(token).get("typ") != SURVIVOR_TYP:
            return
    except UnauthorizedError:
        return
    link_id = await _verifier(request).survivor_token_id(token)
    if link_id is not None:
        note_misuse(link_id, STAFF_ENDPOINT)


async def current_principal(request: Request, session: DbSession) -> Principal:
    async with _FailedAuthentication(request):
        token = bearer_token(request)
        try:
            claims = await _verifier(request).verify_staff(token)
        except UnauthorizedError:
            await _note_survivor_token(request, token)
            raise
        sector = await _staff_standing(request, session, claims)
    return Principal(
        subject=claims.sub,
        org_id=claims.org,
        sector=sector,
        # Only the roles that mean something in the organization's sector (A18, P02).
        roles=roles_from_claim(claims.roles, sector),
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


class AccessLinkLiveLike(Protocol):
    """Whether a survivor token's link still stands (service/app.py hands in
    service/subjects/access_links.py `token_live`: subjects sit above auth)."""

    async def __call__(self, session: AsyncSession, token_id: str) -> bool: ...


async def _survivor(request: Request, session: AsyncSession, token: str) -> SurvivorPrincipal:
    try:
        claims = await _verifier(request).verify_survivor(token)
    except TokenRejectedError as exc:
        if exc.reason == "expired":
            # A link used after it expired: audited for its caseworker (P04).
            link_id = await _verifier(request).survivor_token_id(token)
            if link_id is not None:
                note_misuse(link_id, EXPIRED)
        raise
    await _active_org(request, session, claims.org)
    # Read on every request: a link its caseworker ended is refused at once.
    link_live: AccessLinkLiveLike = request.app.state.access_link_live
    if not await link_live(session, claims.jti):
        note_misuse(claims.jti, REVOKED)
        raise UnauthorizedError("The access link was ended")
    note_survivor(claims.jti)
    return SurvivorPrincipal(subject_id=claims.subject, org_id=claims.org, token_id=claims.jti)


async def current_survivor(request: Request, session: DbSession) -> SurvivorPrincipal:
    async with _FailedAuthentication(request):
        return await _survivor(request, session, bearer_token(request))


CurrentSurvivor = Annotated[SurvivorPrincipal, Depends(current_survivor)]


def require_role(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    if not roles:
        raise ValueError("require_role needs at least one role (an empty list would permit no one)")

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any(*roles):
            raise ForbiddenError("Your role does not permit this")
        return principal

    return dependency


PlatformAdmin = Annotated[Principal, Depends(require_role(Role.platform_admin))]
OrgAdmin = Annotated[Principal, Depends(require_role(Role.org_admin))]
AvailabilityEditor = Annotated[Principal, Depends(require_role(Role.org_admin, Role.supervisor))]
CaseStaff = Annotated[Principal, Depends(require_role(Role.caseworker, Role.supervisor))]
Requester = Annotated[Principal, Depends(require_role(Role.investigator, Role.prosecutor))]
Supervisor = Annotated[Principal, Depends(require_role(Role.supervisor))]


async def case_staff_or_survivor(
    request: Request, session: DbSession
) -> Principal | SurvivorPrincipal:
    """For the few endpoints a survivor's access token may use (API.md): the token's
    `typ` picks the verifier; each verifier still checks everything, so a staff
    token dressed as a survivor token (or the reverse) fails (A12)."""
    async with _FailedAuthentication(request):
        token = bearer_token(request)
        if read_header(token).get("typ") == SURVIVOR_TYP:
            return await _survivor(request, session, token)
    principal = await current_principal(request, session)
    if not principal.has_any(Role.caseworker, Role.supervisor):
        raise ForbiddenError("Your role does not permit this")
    return principal


CaseStaffOrSurvivor = Annotated[Principal | SurvivorPrincipal, Depends(case_staff_or_survivor)]


def rate_limited(limit: Limit) -> Callable[..., Coroutine[Any, Any, None]]:
    """A route dependency counting one use per call for the calling staff principal
    (organization and token subject); over the limit -> 429 with Retry-After, before
    the endpoint runs, so nothing is stored."""

    async def dependency(request: Request, principal: CurrentPrincipal) -> None:
        await limits_of(request).hit(limit, f"{principal.org_id}/{principal.subject}")

    return dependency


AccessLinkLimit = Depends(rate_limited(Limit.access_links))
RecordsRequestLimit = Depends(rate_limited(Limit.records_requests))
