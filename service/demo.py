"""A small demonstration federation for newcomers (`accord demo`).

Organizations and an agreement only: no survivor data, nothing identifying.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal, Role
from service.clock import Clock
from service.collaborations import service as collab_service
from service.collaborations.schemas import AgreementInput, CollaborationCreate, Flow
from service.organizations import service as org_service
from service.organizations.schemas import OrganizationCreate
from service.sectors import Sector
from service.vocabulary import Vocabulary

DEMO_ORGS: tuple[tuple[str, str, Sector], ...] = (
    ("vsp", "Harbor Victim Services (demo)", Sector.victim_services),
    ("shelter", "Safe Haven Shelter (demo)", Sector.shelter),
    ("police", "Metro Police Department (demo)", Sector.law_enforcement),
    ("prosecutor", "County Prosecutor's Office (demo)", Sector.prosecution),
    ("oversight", "State Anti-Trafficking Oversight Board (demo)", Sector.oversight),
)

# Who gets a token, for which organization, with which roles.
DEMO_PRINCIPALS: tuple[tuple[str, str, tuple[Role, ...]], ...] = (
    ("vsp-caseworker", "vsp", (Role.caseworker,)),
    ("vsp-supervisor", "vsp", (Role.supervisor,)),
    ("vsp-admin", "vsp", (Role.org_admin,)),
    ("shelter-caseworker", "shelter", (Role.caseworker,)),
    ("shelter-admin", "shelter", (Role.org_admin,)),
    ("police-investigator", "police", (Role.investigator,)),
    ("prosecutor", "prosecutor", (Role.prosecutor,)),
    ("oversight-auditor", "oversight", (Role.auditor,)),
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


@dataclass(frozen=True)
class Demo:
    orgs: dict[str, uuid.UUID]
    collaboration_id: uuid.UUID


async def create_demo(session: AsyncSession, *, clock: Clock, vocabulary: Vocabulary) -> Demo:
    bootstrap = Principal(
        subject="accord-demo",
        org_id=uuid.UUID(int=0),
        sector=Sector.oversight,
        roles=frozenset({Role.platform_admin}),
    )
    orgs: dict[str, uuid.UUID] = {}
    for key, name, sector in DEMO_ORGS:
        org = await org_service.create(
            session,
            principal=bootstrap,
            data=OrganizationCreate(name=name, sector=sector, jurisdiction="Demo State"),
            clock=clock,
        )
        orgs[key] = org.id
    now = clock.now()
    agreement = AgreementInput(
        flows=[
            Flow(
                from_sector=Sector.victim_services,
                to_sector=Sector.shelter,
                purposes=["services_referral", "case_coordination"],
                categories=SERVICE_CATEGORIES,
            ),
            Flow(
                from_sector=Sector.shelter,
                to_sector=Sector.victim_services,
                purposes=["services_referral", "case_coordination"],
                categories=SERVICE_CATEGORIES,
            ),
            Flow(
                from_sector=Sector.victim_services,
                to_sector=Sector.law_enforcement,
                purposes=["investigation"],
                categories=INVESTIGATION_CATEGORIES,
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
    collab = await collab_service.create(
        session,
        principal=bootstrap,
        data=CollaborationCreate(name="Demo Anti-Trafficking Task Force", agreement=agreement),
        vocabulary=vocabulary,
        clock=clock,
    )
    for key in ("vsp", "shelter", "police", "prosecutor", "oversight"):
        await collab_service.add_member(
            session, principal=bootstrap, collab_id=collab.id, org_id=orgs[key], clock=clock
        )
    return Demo(orgs=orgs, collaboration_id=collab.id)
