"""An organization's own rules (API.md: PUT /v1/organizations/{org_id}/policy):
stricter than the shared ones, never looser (forbid statements only, checked by the
policy engine when stored), kept as numbered versions; the current version of each
organization taking part is compiled for every decision.

Every change moves the policy epoch (a database trigger on this table, migration
0090), so a release never reuses inputs read before it (service/audit/ordering.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.crypto import sha256
from service.organizations.models import OrganizationPolicy
from service.policy.engine import PolicyEngine
from service.policy.org_rules import OrgRules


async def latest_org_policies(
    session: AsyncSession, org_ids: Sequence[uuid.UUID]
) -> list[OrganizationPolicy]:
    """The current version of each organization's own rules (if it has any)."""
    latest = (
        select(OrganizationPolicy.org_id, func.max(OrganizationPolicy.version).label("version"))
        .where(OrganizationPolicy.org_id.in_(list(dict.fromkeys(org_ids))))
        .group_by(OrganizationPolicy.org_id)
        .subquery()
    )
    stmt = select(OrganizationPolicy).join(
        latest,
        (OrganizationPolicy.org_id == latest.c.org_id)
        & (OrganizationPolicy.version == latest.c.version),
    )
    return list((await session.scalars(stmt)).all())


async def org_rules_for(
    session: AsyncSession, engine: PolicyEngine, org_ids: Sequence[uuid.UUID]
) -> list[OrgRules]:
    """Compiled rules of the organizations taking part in a decision. Stored rules
    were validated when stored; if a later policy-set change made one invalid,
    compiling raises, so no decision is ever made without an organization's rules."""
    return [
        engine.compile_org_rules(org_id=row.org_id, version=row.version, cedar_text=row.cedar_text)
        for row in await latest_org_policies(session, org_ids)
    ]


async def set_org_policy(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    org_id: uuid.UUID,
    cedar_text: str,
    clock: Clock,
) -> OrganizationPolicy:
    """Store a new version of the organization's own rules after validating them:
    forbid statements only, valid against the schema (422 otherwise, nothing stored)."""
    require_own_org(principal, org_id, Role.org_admin)
    current = await latest_org_policies(session, [org_id])
    version = (current[0].version if current else 0) + 1
    engine.compile_org_rules(org_id=org_id, version=version, cedar_text=cedar_text)
    row = OrganizationPolicy(
        id=uuid.uuid4(),
        org_id=org_id,
        version=version,
        cedar_text=cedar_text,
        sha256=sha256(cedar_text.encode("utf-8")).hex(),
        created_at=clock.now(),
        created_by=principal.label,
        details={},
    )
    session.add(row)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "policy.changed",
            principal,
            counterpart_org_id=org_id,
            details={"org_rules_version": version, "sha256": row.sha256},
        ),
        clock=clock,
    )
    return row
