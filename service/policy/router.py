"""HTTP endpoints of the policy engine (API.md "Policies", and an organization's own rules)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from service.auth.dependencies import AppClock, CurrentPrincipal, DbSession
from service.policy import service as policy_service
from service.policy.engine import PolicyEngine
from service.policy.schemas import (
    CategoryDecision,
    ExplainRequest,
    ExplainResponse,
    OrgPolicyRead,
    OrgPolicyUpdate,
    OrgRulesRead,
    PolicyFileRead,
    PolicyRefRead,
    PolicySetRead,
)
from service.policy.service import Explanation
from service.web.problems import ALL_PROBLEMS

router = APIRouter(tags=["policies"])


def _engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy_engine
    return engine


def explanation_read(explanation: Explanation) -> ExplainResponse:
    decision = explanation.decision
    return ExplainResponse(
        policy_version=decision.policy_version,
        org_rules=[
            OrgRulesRead(org_id=r.org_id, version=r.version, sha256=r.sha256)
            for r in decision.org_rules
        ],
        decisions=[
            CategoryDecision(
                category=f.category,
                decision="allow" if f.allowed else "deny",
                outlook=explanation.outlooks[f.category],
                policies=[
                    PolicyRefRead(id=p.id, reason=p.reason, source=p.source) for p in f.policies
                ],
                obligations=list(f.obligations),
            )
            for f in decision.fields
        ],
    )


@router.get("/v1/policies", responses=ALL_PROBLEMS)
async def get_policies(request: Request, principal: CurrentPrincipal) -> PolicySetRead:
    """The active policy set: its version hash, its files and the category taxonomy."""
    engine = _engine(request)
    policy_set = engine.policy_set
    return PolicySetRead(
        version=engine.version,
        files=[PolicyFileRead(name=f.name, sha256=f.sha256, text=f.text) for f in policy_set.files],
        taxonomy=engine.taxonomy.as_dict(),
    )


@router.post("/v1/policies/explain", responses=ALL_PROBLEMS)
async def explain(
    request: Request,
    body: ExplainRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> ExplainResponse:
    """Dry run: the decision per category for a hypothetical release from the caller's
    organization. Writes nothing and takes no subject."""
    explanation = await policy_service.explain(
        session, principal=principal, engine=_engine(request), data=body, clock=clock
    )
    return explanation_read(explanation)


@router.put("/v1/organizations/{org_id}/policy", responses=ALL_PROBLEMS)
async def put_org_policy(
    org_id: uuid.UUID,
    request: Request,
    body: OrgPolicyUpdate,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> OrgPolicyRead:
    """The organization's own stricter rules (forbid statements only), as a new version."""
    row = await policy_service.set_org_policy(
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
