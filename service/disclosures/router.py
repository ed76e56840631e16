"""POST /v1/policies/explain: the door's dry run (API.md "Policy"). Same inputs as
a real release, a hypothetical consent, nothing written."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.auth.dependencies import CurrentPrincipal
from service.disclosures import explain as explain_service
from service.disclosures.explain import Explanation
from service.policy.engine import PolicyEngine
from service.policy.schemas import (
    AgreementStandingRead,
    CategoryDecision,
    ExplainRequest,
    ExplainResponse,
    MissingSignatureRead,
    OrgRulesRead,
    PolicyRefRead,
)
from service.web.deps import AppClock, DbSession
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
        agreements=[
            AgreementStandingRead(
                collaboration_id=a.collaboration_id,
                latest_version=a.latest_version,
                version_in_force=a.in_force.version if a.in_force is not None else None,
                missing_signatures=[
                    MissingSignatureRead(version=v, org_id=o) for v, o in a.missing
                ],
            )
            for a in explanation.agreements
        ],
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
    explanation = await explain_service.explain(
        session, principal=principal, engine=_engine(request), data=body, clock=clock
    )
    return explanation_read(explanation)
