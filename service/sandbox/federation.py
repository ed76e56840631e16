"""The demonstration federation, found or created on the service's own database.

Organizations and a task force only: no survivor data, nothing identifying. Found
again by name on every run, so `accord demo` can be run any number of times: it
renews tokens and never makes a second federation.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal, Role
from service.clock import Clock
from service.collaborations import service as collab_service
from service.collaborations.models import Collaboration
from service.collaborations.schemas import AgreementInput, CollaborationCreate, Flow
from service.organizations import service as org_service
from service.organizations.models import Organization
from service.organizations.schemas import OrganizationCreate
from service.sectors import Sector
from service.vocabulary import Vocabulary

JURISDICTION = "Demo State"
COLLABORATION_NAME = "Demo Anti-Trafficking Task Force"
# The VSP and the police only (issue 24): identity and contact for investigations,
# never needs. Binds only while both have countersigned it (docs/agreements.md).
PROTOCOL_NAME = "VSP-Police Investigations Protocol (demo)"
PROTOCOL_MEMBERS = ("vsp", "police")
PROTOCOL_CATEGORIES = ["identity", "contact"]

DEMO_ORGS: tuple[tuple[str, str, Sector], ...] = (
    ("vsp", "Harbor Victim Services (demo)", Sector.victim_services),
    ("shelter", "Safe Haven Shelter (demo)", Sector.shelter),
    ("police", "Metro Police Department (demo)", Sector.law_enforcement),
    ("prosecutor", "County Prosecutor's Office (demo)", Sector.prosecution),
    ("oversight", "State Anti-Trafficking Oversight Board (demo)", Sector.oversight),
)

# Who gets a token, for which organization, with which roles: every organization's
# admin (who registers its keys) and the staff the story needs (docs/roles.md).
DEMO_PRINCIPALS: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("vsp-caseworker", "vsp", (Role.caseworker,)),
    ("vsp-supervisor", "vsp", (Role.supervisor,)),
    ("vsp-admin", "vsp", (Role.org_admin,)),
    ("shelter-caseworker", "shelter", (Role.caseworker,)),
    ("shelter-admin", "shelter", (Role.org_admin,)),
    ("police-investigator", "police", (Role.investigator,)),
    ("police-caseworker", "police", (Role.caseworker,)),
    ("police-admin", "police", (Role.org_admin,)),
    ("prosecutor", "prosecutor", (Role.prosecutor,)),
    ("prosecutor-admin", "prosecutor", (Role.org_admin,)),
    ("oversight-auditor", "oversight", (Role.auditor,)),
    ("oversight-admin", "oversight", (Role.org_admin,)),
    ("platform-admin", "oversight", (Role.platform_admin,)),
)

SERVICE_CATEGORIES = [
    "identity",
    "contact",
    "language",
    "needs",
    "demographics",
    "safety_plan",
    "children",
]
INVESTIGATION_CATEGORIES = ["identity", "contact", "case_summary", "trafficking_type", "legal_case"]

# Acts for the sandbox; recorded in the audit log as the creator of what it makes.
SANDBOX_PRINCIPAL = Principal(
    subject="accord-demo",
    org_id=uuid.UUID(int=0),
    sector=Sector.oversight,
    roles=frozenset({Role.platform_admin}),
)


@dataclass(frozen=True)
class Demo:
    orgs: dict[str, uuid.UUID]
    collaboration_id: uuid.UUID
    created: bool  # False: every part existed already


def _agreement(clock: Clock) -> AgreementInput:
    now = clock.now()
    services = ["services_referral", "case_coordination"]
    return AgreementInput(
        flows=[
            Flow(
                from_sector=Sector.victim_services,
                to_sector=Sector.shelter,
                purposes=services,
                categories=SERVICE_CATEGORIES,
            ),
            Flow(
                from_sector=Sector.shelter,
                to_sector=Sector.victim_services,
                purposes=services,
                categories=SERVICE_CATEGORIES,
            ),
            Flow(
                from_sector=Sector.victim_services,
                to_sector=Sector.prosecution,
                purposes=["prosecution"],
                categories=INVESTIGATION_CATEGORIES,
            ),
        ],
        effective_from=now - timedelta(minutes=1),
        effective_to=now + timedelta(days=365),
        document_sha256=hashlib.sha256(b"Demo task force memorandum of understanding").hexdigest(),
    )


def protocol_agreement(clock: Clock, *, categories: list[str] | None = None) -> AgreementInput:
    """The VSP-police protocol (or a proposed change to it)."""
    now = clock.now()
    return AgreementInput(
        flows=[
            Flow(
                from_sector=Sector.victim_services,
                to_sector=Sector.law_enforcement,
                purposes=["investigation"],
                categories=categories or PROTOCOL_CATEGORIES,
            )
        ],
        effective_from=now - timedelta(minutes=1),
        effective_to=now + timedelta(days=365),
        document_sha256=hashlib.sha256(b"Demo VSP-police investigations protocol").hexdigest(),
    )


async def _ensure_collaboration(
    session: AsyncSession,
    *,
    name: str,
    members: list[uuid.UUID],
    agreement: AgreementInput,
    clock: Clock,
    vocabulary: Vocabulary,
) -> tuple[uuid.UUID, bool]:
    """The collaboration by name, with exactly these members listed in its latest
    agreement version (else a new version is proposed to them, for them to sign)."""
    created = False
    collab_id = await session.scalar(
        select(Collaboration.id)
        .where(Collaboration.name == name)
        .order_by(Collaboration.created_at, Collaboration.id)
        .limit(1)
    )
    if collab_id is None:
        collab = await collab_service.create(
            session,
            principal=SANDBOX_PRINCIPAL,
            data=CollaborationCreate(name=name, agreement=agreement, members=members),
            vocabulary=vocabulary,
            clock=clock,
        )
        return collab.id, True
    current = {
        m.org_id for m in (await collab_service.active_members(session, [collab_id]))[collab_id]
    }
    for org_id in members:
        if org_id not in current:
            await collab_service.add_member(
                session,
                principal=SANDBOX_PRINCIPAL,
                collab_id=collab_id,
                org_id=org_id,
                clock=clock,
            )
            created = True
    latest = (await collab_service.agreement_versions(session, [collab_id]))[collab_id][0]
    if sorted(latest.members or []) != sorted(str(m) for m in members):
        await collab_service.amend_agreement(
            session,
            principal=SANDBOX_PRINCIPAL,
            collab_id=collab_id,
            agreement=agreement,
            vocabulary=vocabulary,
            clock=clock,
        )
        created = True
    return collab_id, created


async def _find_orgs(session: AsyncSession) -> dict[str, uuid.UUID]:
    """The demo organizations already there (the oldest of each name, should an
    earlier version of `accord demo` have made several)."""
    wanted = {(name, sector.value): key for key, name, sector in DEMO_ORGS}
    rows = await session.scalars(
        select(Organization)
        .where(
            Organization.name.in_([name for name, _ in wanted]),
            Organization.jurisdiction == JURISDICTION,
            Organization.active.is_(True),
        )
        .order_by(Organization.created_at, Organization.id)
    )
    found: dict[str, uuid.UUID] = {}
    for org in rows:
        key = wanted.get((org.name, org.sector))
        if key is not None:
            found.setdefault(key, org.id)
    return found


async def ensure_demo(session: AsyncSession, *, clock: Clock, vocabulary: Vocabulary) -> Demo:
    """Find the demo federation, creating whatever part of it is missing."""
    orgs = await _find_orgs(session)
    created = False
    for key, name, sector in DEMO_ORGS:
        if key not in orgs:
            org = await org_service.create(
                session,
                principal=SANDBOX_PRINCIPAL,
                data=OrganizationCreate(name=name, sector=sector, jurisdiction=JURISDICTION),
                clock=clock,
            )
            orgs[key] = org.id
            created = True
    collab_id, made = await _ensure_collaboration(
        session,
        name=COLLABORATION_NAME,
        members=[orgs[key] for key, _name, _sector in DEMO_ORGS],
        agreement=_agreement(clock),
        clock=clock,
        vocabulary=vocabulary,
    )
    _protocol_id, made_protocol = await _ensure_collaboration(
        session,
        name=PROTOCOL_NAME,
        members=[orgs[key] for key in PROTOCOL_MEMBERS],
        agreement=protocol_agreement(clock),
        clock=clock,
        vocabulary=vocabulary,
    )
    return Demo(orgs=orgs, collaboration_id=collab_id, created=created or made or made_protocol)
