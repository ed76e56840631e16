"""HTTP endpoints for organizations and the directory (API.md)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from service.auth.dependencies import CurrentPrincipal, PlatformAdmin
from service.auth.principals import Principal
from service.crypto import b64encode
from service.errors import NotFoundError
from service.organizations import rules, visibility
from service.organizations import service as org_service
from service.organizations.models import Organization, OrganizationKey
from service.organizations.schemas import (
    Availability,
    AvailabilityUpdate,
    ConfidentialityUpdate,
    KeyHistory,
    KeysRegistered,
    KeysUpdate,
    OrganizationCreate,
    OrganizationKeys,
    OrganizationPage,
    OrganizationRead,
    PublicKey,
    Service,
)
from service.policy.engine import PolicyEngine
from service.policy.schemas import OrgPolicyRead, OrgPolicyUpdate
from service.sectors import Sector
from service.web.deps import AppClock, DbSession
from service.web.params import Pages
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

ERRORS = ALL_PROBLEMS


def _engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy_engine
    return engine


def key_read(key: OrganizationKey) -> PublicKey:
    return PublicKey(
        key_id=key.key_id,
        kind="encryption" if key.kind == "encryption" else "signing",
        public_key=b64encode(key.public_key),
        created_at=key.created_at,
        retired_at=key.retired_at,
    )


def org_read(org: Organization, keys: dict[str, OrganizationKey]) -> OrganizationRead:
    enc = keys.get("encryption")
    sig = keys.get("signing")
    return OrganizationRead(
        id=org.id,
        name=org.name,
        sector=Sector(org.sector),
        jurisdiction=org.jurisdiction,
        availability=Availability(
            accepting_referrals=org.accepting_referrals,
            capacity=org.capacity,
            hours=org.hours,
            languages=list(org.languages),
            services=list(org.services),
            populations=list(org.populations),
            updated_at=org.availability_updated_at,
        ),
        keys=OrganizationKeys(
            encryption=key_read(enc) if enc else None, signing=key_read(sig) if sig else None
        ),
        confidential=org.confidential,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_organization(
    body: OrganizationCreate, principal: PlatformAdmin, session: DbSession, clock: AppClock
) -> OrganizationRead:
    org = await org_service.create(session, principal=principal, data=body, clock=clock)
    return org_read(org, {})


@router.get("", responses=ERRORS)
async def list_organizations(
    principal: CurrentPrincipal,
    session: DbSession,
    pages: Pages,
    sector: Sector | None = None,
    service: Service | None = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    accepting: bool | None = None,
) -> OrganizationPage:
    filters = org_service.DirectoryFilters(
        sector=sector,
        service=service.value if service else None,
        language=language,
        accepting=accepting,
    )
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id), "organizations", filters.as_dict()
    )
    rows, position = await org_service.list_directory(
        session,
        filters=filters,
        page=pages.page(binding),
        visible=visibility.visible_clause(visibility.Viewer(principal.org_id, principal.sector)),
    )
    keys = await org_service.current_keys(session, [o.id for o in rows])
    return OrganizationPage(
        items=[org_read(o, keys.get(o.id, {})) for o in rows],
        next_cursor=pages.next_cursor(position, binding),
    )


@router.get("/{org_id}", responses=ERRORS)
async def get_organization(
    org_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> OrganizationRead:
    await _named_to(session, principal, org_id)
    org = await org_service.get_visible(session, org_id)
    keys = await org_service.current_keys(session, [org.id])
    return org_read(org, keys.get(org.id, {}))


async def _named_to(session: DbSession, principal: Principal, org_id: uuid.UUID) -> None:
    """A confidential organization is a random id to those it is hidden from."""
    viewer = visibility.Viewer(principal.org_id, principal.sector)
    if not await visibility.may_see(session, viewer, org_id):
        raise NotFoundError()


@router.get("/{org_id}/keys", responses=ERRORS)
async def get_key_history(
    org_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> KeyHistory:
    """Every key the organization ever registered, current and retired, so a recipient
    can check a signature made before a rotation by its key id."""
    await _named_to(session, principal, org_id)
    return KeyHistory(items=[key_read(k) for k in await org_service.key_history(session, org_id)])


@router.put("/{org_id}/keys", responses=ERRORS)
async def put_keys(
    org_id: uuid.UUID,
    body: KeysUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> KeysRegistered:
    enc_id, sig_id, _changed = await org_service.register_keys(
        session, principal=principal, org_id=org_id, data=body, clock=clock
    )
    return KeysRegistered(encryption_key_id=enc_id, signing_key_id=sig_id)


@router.put("/{org_id}/availability", responses=ERRORS)
async def put_availability(
    org_id: uuid.UUID,
    body: AvailabilityUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> OrganizationRead:
    org = await org_service.update_availability(
        session, principal=principal, org_id=org_id, data=body, clock=clock
    )
    keys = await org_service.current_keys(session, [org.id])
    return org_read(org, keys.get(org.id, {}))


@router.put("/{org_id}/confidentiality", responses=ERRORS)
async def put_confidentiality(
    org_id: uuid.UUID,
    body: ConfidentialityUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> OrganizationRead:
    """Mark the organization confidential (its admins): named only to members of its
    collaborations and to oversight (docs/threat-model.md "Confidential organizations")."""
    org = await visibility.set_confidential(
        session, principal=principal, org_id=org_id, confidential=body.confidential, clock=clock
    )
    keys = await org_service.current_keys(session, [org.id])
    return org_read(org, keys.get(org.id, {}))


@router.put("/{org_id}/policy", responses=ALL_PROBLEMS, tags=["policies"])
async def put_org_policy(
    org_id: uuid.UUID,
    request: Request,
    body: OrgPolicyUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> OrgPolicyRead:
    """The organization's own stricter rules (forbid statements only), as a new version."""
    row = await rules.set_org_policy(
        session,
        principal=principal,
        engine=_engine(request),
        org_id=org_id,
        cedar_text=body.cedar,
        clock=clock,
    )
    return OrgPolicyRead(
        org_id=row.org_id,
        version=row.version,
        sha256=row.sha256,
        created_at=row.created_at,
        created_by=row.created_by,
    )
