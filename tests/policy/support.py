"""Builders for policy tests: a fixed cast of organizations, a permissive agreement
(so each test isolates one rule), and a default engine loaded from `policies/`."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.policy.engine import CedarPolicyEngine
from service.policy.inputs import (
    Actor,
    AgreementFlow,
    ConsentInForce,
    DecisionRequest,
    FieldRef,
    OrgRef,
)
from service.policy.loader import LoadedPolicySet, build_policy_set, read_policy_dir
from service.sectors import Sector

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)

VSP = OrgRef(uuid.UUID("00000000-0000-4000-8000-000000000001"), Sector.victim_services)
ORGS: dict[Sector, OrgRef] = {
    sector: OrgRef(uuid.UUID(f"00000000-0000-4000-8000-{index + 100:012d}"), sector)
    for index, sector in enumerate(Sector)
}


@functools.cache
def policy_files() -> dict[str, str]:
    return read_policy_dir(POLICY_DIR)


@functools.cache
def default_set() -> LoadedPolicySet:
    return build_policy_set(policy_files())


@functools.cache
def default_engine() -> CedarPolicyEngine:
    return CedarPolicyEngine(default_set(), validate_requests=True)


def all_categories() -> frozenset[str]:
    return frozenset(default_set().taxonomy.categories)


def all_purposes() -> frozenset[str]:
    return frozenset(default_set().taxonomy.purposes)


def open_agreement(sender: Sector = Sector.victim_services) -> tuple[AgreementFlow, ...]:
    """Every flow from the sender's sector to every sector: isolates the other rules."""
    return tuple(
        AgreementFlow(
            from_sector=sender,
            to_sector=sector,
            purposes=all_purposes(),
            categories=all_categories(),
            effective_from=NOW - timedelta(days=365),
        )
        for sector in Sector
    )


def consent(recipient: OrgRef, purpose: str, categories: set[str], **kw: Any) -> ConsentInForce:
    values: dict[str, Any] = {
        "owner_org": VSP.id,
        "recipients": frozenset({recipient.id}),
        "purposes": frozenset({purpose}),
        "categories": frozenset(categories),
        "valid_from": NOW - timedelta(days=1),
        "expires_at": NOW + timedelta(days=30),
    }
    values.update(kw)
    return ConsentInForce(**values)


def request(
    recipient: Sector = Sector.shelter,
    *,
    purpose: str = "services_referral",
    basis: str = "consent",
    categories: tuple[str, ...] = ("contact",),
    consent_categories: set[str] | None = None,
    with_consent: bool = True,
    roles: frozenset[str] = frozenset({"caseworker"}),
    justified: bool = False,
    **kw: Any,
) -> DecisionRequest:
    """A request that every default rule allows, unless the arguments say otherwise."""
    to = ORGS[recipient]
    grant = None
    if with_consent:
        grant = consent(to, purpose, consent_categories or set(categories))
    built = DecisionRequest(
        actor=Actor(org_id=VSP.id, roles=roles),
        sender=VSP,
        recipient=to,
        subject_owner=VSP.id,
        purpose=purpose,
        legal_basis=basis,
        at=NOW,
        fields=tuple(FieldRef(name=f"{c}_field", category=c) for c in categories),
        consent=grant,
        agreements=open_agreement(),
        justification_given=justified,
    )
    return dataclasses.replace(built, **kw) if kw else built
