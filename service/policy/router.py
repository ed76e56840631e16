"""HTTP endpoint of the policy engine: the active policy set (API.md "Policy").
The explain dry run is the door's (service/disclosures/router.py); an organization's
own rules are its own (service/organizations/router.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.auth.dependencies import CurrentPrincipal
from service.policy.engine import PolicyEngine
from service.policy.schemas import (
    PolicyFileRead,
    PolicySetRead,
)
from service.web.problems import ALL_PROBLEMS

router = APIRouter(tags=["policies"])


def _engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy_engine
    return engine


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
