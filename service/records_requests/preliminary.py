"""The preliminary answer to a records request: per category, `allowed`,
`needs_consent` or `never`, with the deciding policies.

Computed from policy alone: the two organizations' records (sector, active),
their shared agreements and organization rules, and the policy set. It never
reads subjects, consents, referrals or records, so it is the same whether or not
the holder serves such a person: a request cannot be used to learn that someone is
a client. The holder is assumed to answer through a supervisor (the most any
answer could be), with the justification the request must carry.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal, Role
from service.clock import Clock
from service.disclosures import explain as explain_service
from service.errors import NotFoundError
from service.organizations.models import Organization
from service.policy.engine import PolicyEngine
from service.policy.schemas import ExplainRequest
from service.records_requests.schemas import PreliminaryItem, RecordsRequestCreate
from service.sectors import Sector


async def preliminary(
    session: AsyncSession,
    *,
    requester: Principal,
    engine: PolicyEngine,
    data: RecordsRequestCreate,
    clock: Clock,
) -> tuple[list[PreliminaryItem], str]:
    """(items in the order the categories were asked, policy-set version)."""
    holder = await session.get(Organization, data.holder_org_id)
    if holder is None or not holder.active or holder.id == requester.org_id:
        raise NotFoundError()
    as_holder = Principal(
        subject="preliminary",
        org_id=holder.id,
        sector=Sector(holder.sector),
        roles=frozenset({Role.supervisor, Role.caseworker}),
    )
    explanation = await explain_service.explain(
        session,
        principal=as_holder,
        engine=engine,
        data=ExplainRequest(
            recipient_org_id=requester.org_id,
            purpose=data.purpose,
            legal_basis=data.legal_basis.value,
            categories=list(dict.fromkeys(data.categories)),
            justification_given=True,
        ),
        clock=clock,
    )
    by_category = {f.category: f for f in explanation.decision.fields}
    items = [
        PreliminaryItem(
            category=category,
            outcome=explanation.outlooks[category],
            policies=sorted({p.id for p in by_category[category].policies}),
        )
        for category in dict.fromkeys(data.categories)
    ]
    return items, explanation.decision.policy_version
