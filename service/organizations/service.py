"""Organizations: creation, the directory, public keys, availability."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, bindparam, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from service import crypto
from service.audit.log import AuditEvent, append
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base
from service.errors import NotFoundError, ProblemItem, RuleViolationError
from service.events.catalog import EventType
from service.events.outbox import emit
from service.organizations.models import Organization, OrganizationKey
from service.organizations.schemas import AvailabilityUpdate, KeysUpdate, OrganizationCreate
from service.sectors import Sector
from service.web.pagination import PageRequest, Position, next_position


@dataclass(frozen=True)
class DirectoryFilters:
    sector: Sector | None = None
    service: str | None = None
    language: str | None = None
    accepting: bool | None = None

    def as_dict(self) -> dict[str, str | bool | None]:
        return {
            "sector": self.sector.value if self.sector else None,
            "service": self.service,
            "language": self.language,
            "accepting": self.accepting,
        }


async def create(
    session: AsyncSession, *, principal: Principal, data: OrganizationCreate, clock: Clock
) -> Organization:
    org = Organization(
        id=uuid.uuid4(),
        name=data.name,
        sector=data.sector.value,
        jurisdiction=data.jurisdiction,
        active=True,
        created_at=clock.now(),
        accepting_referrals=False,
        capacity=None,
        hours="business_hours",
        languages=[],
        services=[],
        populations=[],
    )
    session.add(org)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "organization.created",
            principal,
            counterpart_org_id=org.id,
            details={"sector": org.sector},
        ),
        clock=clock,
    )
    return org


def _json_list_contains(
    session: AsyncSession, column: InstrumentedAttribute[list[str]], value: str
) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return column.op("@>")(func.jsonb_build_array(literal(value)))
    # A column comparison, not text(): two filters in one query must not share a bind name.
    each = func.json_each(column).table_valued("value").alias()
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


def _directory_statement(session: AsyncSession, filters: DirectoryFilters) -> Select[Organization]:
    stmt = select(Organization).where(Organization.active.is_(True))
    if filters.sector is not None:
        stmt = stmt.where(Organization.sector == filters.sector.value)
    if filters.accepting is not None:
        stmt = stmt.where(Organization.accepting_referrals.is_(filters.accepting))
    if filters.service is not None:
        stmt = stmt.where(_json_list_contains(session, Organization.services, filters.service))
    if filters.language is not None:
        stmt = stmt.where(_json_list_contains(session, Organization.languages, filters.language))
    return stmt


async def list_directory(
    session: AsyncSession,
    *,
    filters: DirectoryFilters,
    page: PageRequest,
    visible: ColumnElement[bool] | None = None,
) -> tuple[list[Organization], Position | None]:
    """`visible`: which organizations the caller may see (service/organizations/visibility.py)."""
    stmt = _directory_statement(session, filters)
    if visible is not None:
        stmt = stmt.where(visible)
    if page.after is not None:
        stmt = stmt.where(
            (Organization.created_at > page.after.at)
            | ((Organization.created_at == page.after.at) & (Organization.id > page.after.id))
        )
    stmt = stmt.order_by(Organization.created_at, Organization.id).limit(page.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return rows[: page.limit], next_position(rows, page.limit)


async def get_visible(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    """Any principal may read any active organization's directory entry."""
    org = await session.get(Organization, org_id)
    if org is None or not org.active:
        raise NotFoundError()
    return org


async def current_keys(
    session: AsyncSession, org_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, OrganizationKey]]:
    if not org_ids:
        return {}
    stmt = select(OrganizationKey).where(
        OrganizationKey.org_id.in_(org_ids), OrganizationKey.retired_at.is_(None)
    )
    out: dict[uuid.UUID, dict[str, OrganizationKey]] = {}
    for key in (await session.scalars(stmt)).all():
        out.setdefault(key.org_id, {})[key.kind] = key
    return out


async def key_history(session: AsyncSession, org_id: uuid.UUID) -> list[OrganizationKey]:
    await get_visible(session, org_id)
    stmt = (
        select(OrganizationKey)
        .where(OrganizationKey.org_id == org_id)
        .order_by(OrganizationKey.created_at.desc(), OrganizationKey.kind)
    )
    return list((await session.scalars(stmt)).all())


def _decode_key(path: str, text_value: str, kind: str) -> tuple[bytes | None, list[ProblemItem]]:
    try:
        raw = crypto.b64decode_strict(text_value)
    except ValueError:
        return None, [ProblemItem(path, "must be standard base64 with canonical padding")]
    try:
        if kind == "encryption":
            crypto.validate_x25519_public_key(raw)
        else:
            crypto.validate_ed25519_public_key(raw)
    except crypto.InvalidKeyError as exc:
        return None, [ProblemItem(path, str(exc))]
    return raw, []


async def register_keys(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    data: KeysUpdate,
    clock: Clock,
) -> tuple[str, str, bool]:
    """Register new current keys; the old ones are retired, never deleted.

    Returns (encryption key id, signing key id, whether anything changed): sending
    the current keys again is an idempotent no-op (a retried request).
    """
    require_own_org(principal, org_id, Role.org_admin)
    await get_visible(session, org_id)
    enc, problems = _decode_key("/encryption_public_key", data.encryption_public_key, "encryption")
    sig, sig_problems = _decode_key("/signing_public_key", data.signing_public_key, "signing")
    problems += sig_problems
    if data.encryption_public_key == data.signing_public_key:
        problems.append(ProblemItem("/signing_public_key", "must differ from the encryption key"))
    if problems or enc is None or sig is None:
        raise RuleViolationError(errors=problems)

    existing = (
        await session.scalars(
            select(OrganizationKey).where(OrganizationKey.public_key.in_([enc, sig]))
        )
    ).all()
    current = (await current_keys(session, [org_id])).get(org_id, {})
    if (
        "encryption" in current
        and "signing" in current
        and current["encryption"].public_key == enc
        and current["signing"].public_key == sig
    ):
        return current["encryption"].key_id, current["signing"].key_id, False
    for key in existing:
        field = "/encryption_public_key" if key.public_key == enc else "/signing_public_key"
        if key.org_id != org_id:
            # Cross-organization reuse would let one organization be confused for another.
            problems.append(ProblemItem(field, "this key is registered to another organization"))
        elif key.retired_at is not None:
            problems.append(ProblemItem(field, "a retired key cannot be registered again"))
        else:
            problems.append(ProblemItem(field, "this key is already registered in the other role"))
    if problems:
        raise RuleViolationError(errors=problems)

    now = clock.now()
    for key in current.values():
        key.retired_at = now
    new_keys = []
    for kind, raw in (("encryption", enc), ("signing", sig)):
        key = OrganizationKey(
            id=uuid.uuid4(),
            org_id=org_id,
            kind=kind,
            key_id=crypto.key_id_for(raw),
            public_key=raw,
            created_at=now,
            retired_at=None,
            registered_by=principal.label,
        )
        session.add(key)
        new_keys.append(key)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "key.rotated",
            principal,
            counterpart_org_id=org_id,
            details={"encryption_key_id": new_keys[0].key_id, "signing_key_id": new_keys[1].key_id},
        ),
        clock=clock,
    )
    # Every principal may read any organization's current keys in the directory, so
    # every active organization is told (a tool refreshes the keys it seals to).
    active = (await session.scalars(select(Organization.id).where(Organization.active))).all()
    await emit(
        session,
        kind=EventType.keys_rotated,
        to=active,
        object_type="organization",
        object_id=org_id,
        data={
            "org_id": str(org_id),
            "encryption_key_id": new_keys[0].key_id,
            "signing_key_id": new_keys[1].key_id,
        },
        at=now,
    )
    return new_keys[0].key_id, new_keys[1].key_id, True


async def update_availability(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    data: AvailabilityUpdate,
    clock: Clock,
) -> Organization:
    require_own_org(principal, org_id, Role.org_admin, Role.supervisor)
    org = await get_visible(session, org_id)
    org.accepting_referrals = data.accepting_referrals
    org.capacity = data.capacity
    org.hours = data.hours
    org.languages = sorted(set(data.languages))
    org.services = sorted({s.value for s in data.services})
    org.populations = sorted({p.value for p in data.populations})
    org.availability_updated_at = clock.now()
    await session.flush()
    return org


_ORGANIZATIONS = Base.metadata.tables[Organization.__tablename__]
# On the driver (service/db/direct.py): every authenticated request runs it, and
# through the ORM (`session.get`, an entity of every column) it was a tenth of a
# delivery's CPU time.
_ORGANIZATION_STATE = DirectStatement(
    select(_ORGANIZATIONS.c.sector, _ORGANIZATIONS.c.active).where(
        _ORGANIZATIONS.c.id == bindparam("org_id")
    )
)


async def active_sector(session: AsyncSession, org_id: uuid.UUID) -> Sector | None:
    """The organization's sector, from its record, if it exists and is active; read
    on every authenticated request (service/auth/dependencies.py)."""
    rows = await direct.fetch(session, _ORGANIZATION_STATE, {"org_id": org_id})
    if not rows or not rows[0][1]:
        return None
    return Sector(rows[0][0])
