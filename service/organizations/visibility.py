"""Confidential organizations (issue 22, item 17; docs/threat-model.md
"Confidential organizations").

An organization that marks itself confidential is named, with its jurisdiction,
availability and keys, only to its own principals, to members of a collaboration it
currently belongs to, and to the oversight sector. Anyone else:

- does not find it in the directory listing, and gets the 404 of a random id for
  its entry and its keys (the directory's filters and its keyset cursor would
  otherwise tell its services, languages and real id);
- where another view names it (a subject's accounting of disclosures, the survivor's
  pages), sees a placeholder name, its sector, and an opaque id.

The opaque id is a pseudonym per viewing organization: HMAC-SHA-256 of the viewer's
id and the real id under a key derived from the service's cursor secret. The same
viewer always sees the same opaque id (it can tell two entries name the same
organization); two viewers see different ones, so comparing notes links nothing,
and without the service's secret the opaque id says nothing about the real id."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, column, or_, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.errors import NotFoundError
from service.organizations.models import Organization
from service.sectors import Sector

CONFIDENTIAL_NAME = "Confidential organization"
_LABEL = b"accord confidential organization pseudonym v1"

# Read as a plain table: collaborations sit above organizations in the layers.
_MEMBERS = table(
    "collaboration_members",
    column("collaboration_id"),
    column("org_id"),
    column("removed_at"),
)


@dataclass(frozen=True)
class Viewer:
    """Who looks: an organization (a staff principal's, or the owner of a survivor's
    subject), and whether it is the oversight sector."""

    org_id: uuid.UUID
    sector: Sector | None = None

    @property
    def sees_all(self) -> bool:
        return self.sector is Sector.oversight


def _partners(viewer: Viewer) -> ColumnElement[bool]:
    """Organizations sharing a current collaboration with the viewer."""
    mine = select(_MEMBERS.c.collaboration_id).where(
        _MEMBERS.c.org_id == viewer.org_id, _MEMBERS.c.removed_at.is_(None)
    )
    shared = select(_MEMBERS.c.org_id).where(
        _MEMBERS.c.collaboration_id.in_(mine), _MEMBERS.c.removed_at.is_(None)
    )
    return Organization.id.in_(shared)


def visible_clause(viewer: Viewer) -> ColumnElement[bool] | None:
    """A WHERE clause on organizations keeping those the viewer may see by name
    (None: all of them)."""
    if viewer.sees_all:
        return None
    return or_(
        Organization.confidential.is_(False),
        Organization.id == viewer.org_id,
        _partners(viewer),
    )


async def hidden_among(
    session: AsyncSession, viewer: Viewer, org_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """The organizations among `org_ids` the viewer may not see by name."""
    wanted = set(org_ids) - {viewer.org_id}
    if not wanted or viewer.sees_all:
        return set()
    confidential = set(
        (
            await session.scalars(
                select(Organization.id).where(
                    Organization.id.in_(wanted), Organization.confidential.is_(True)
                )
            )
        ).all()
    )
    if not confidential:
        return set()
    partners = set(
        (
            await session.scalars(
                select(Organization.id).where(Organization.id.in_(confidential), _partners(viewer))
            )
        ).all()
    )
    return confidential - partners


async def may_see(session: AsyncSession, viewer: Viewer, org_id: uuid.UUID) -> bool:
    return org_id not in await hidden_among(session, viewer, [org_id])


def pseudonym_key(secret: bytes) -> bytes:
    """The key of opaque ids, derived from a service secret (domain-separated)."""
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def opaque_id(key: bytes, viewer: Viewer, org_id: uuid.UUID) -> uuid.UUID:
    """The id a confidential organization has for this viewer (see the module text)."""
    digest = hmac.new(key, viewer.org_id.bytes + org_id.bytes, hashlib.sha256).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def masked(org: Organization, opaque: uuid.UUID | None = None) -> Organization:
    """A detached stand-in: the sector only, a placeholder name, no details."""
    return Organization(
        id=opaque or uuid.UUID(int=0),
        name=CONFIDENTIAL_NAME,
        sector=org.sector,
        jurisdiction=None,
        active=org.active,
        created_at=org.created_at,
        accepting_referrals=False,
        capacity=None,
        hours="business_hours",
        languages=[],
        services=[],
        populations=[],
        availability_updated_at=None,
        confidential=True,
    )


async def mask_all(
    session: AsyncSession, viewer: Viewer, orgs: Mapping[uuid.UUID, Organization]
) -> dict[uuid.UUID, Organization]:
    """`orgs` with every one the viewer may not see by name replaced by a stand-in
    (same key: the caller's lookups by real id still work)."""
    hidden = await hidden_among(session, viewer, orgs)
    return {k: masked(o) if k in hidden else o for k, o in orgs.items()}


async def set_confidential(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    confidential: bool,
    clock: Clock,
) -> Organization:
    """An organization's own admin marks it confidential (or not); audited."""
    require_own_org(principal, org_id, Role.org_admin)
    org = await session.get(Organization, org_id)
    if org is None or not org.active:
        raise NotFoundError()
    if org.confidential != confidential:
        org.confidential = confidential
        await session.flush()
        await append(
            session,
            AuditEvent(
                "organization.confidentiality_set",
                principal,
                counterpart_org_id=org.id,
                details={"confidential": confidential},
            ),
            clock=clock,
        )
    return org
