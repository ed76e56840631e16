"""An independent, plain-Python model of the default rules (DESIGN.md section 5).

Written from the design, not from the Cedar files, as the oracle for the
differential test and the benchmark's baseline. It lives in the tests only:
it is never a second engine in the service (DESIGN.md section 9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.policy.inputs import WILDCARD, ConsentInForce, DecisionRequest
from service.policy.taxonomy import CategoryInfo, Taxonomy

NO_PRIVILEGED = frozenset({"law_enforcement", "prosecution", "government"})
EMERGENCY_CATEGORIES = frozenset({"identity", "contact", "location"})
MANDATED_SECTORS = frozenset({"child_welfare", "law_enforcement"})
MANDATED_CATEGORIES = frozenset({"identity", "contact", "location", "children", "case_summary"})


@dataclass(frozen=True)
class ModelDecision:
    name: str
    category: str
    allowed: bool
    policies: frozenset[str]


def _live(grant: ConsentInForce, now: datetime) -> bool:
    if grant.revoked_at is not None and grant.revoked_at <= now:
        return False
    return grant.valid_from <= now < grant.expires_at


def _covers(
    grant: ConsentInForce,
    request: DecisionRequest,
    info: CategoryInfo,
    field_name: str,
    *,
    named_only: bool,
    check_fields: bool,
) -> bool:
    if grant.owner_org != request.subject_owner or not _live(grant, request.at):
        return False
    if request.recipient.id not in grant.recipients or request.purpose not in grant.purposes:
        return False
    named = info.name in grant.categories
    if not named and (named_only or info.explicit or WILDCARD not in grant.categories):
        return False
    return not check_fields or grant.fields is None or field_name in grant.fields


def _agreement_allows(request: DecisionRequest, category: str) -> bool:
    return any(
        flow.in_effect(request.at)
        and flow.from_sector == request.sender.sector
        and flow.to_sector == request.recipient.sector
        and request.purpose in flow.purposes
        and category in flow.categories
        for flow in request.agreements
    )


def _guardian_ok(request: DecisionRequest, info: CategoryInfo, field_name: str) -> bool:
    grant = request.consent
    assert grant is not None
    guardian = grant.guardian
    if guardian is None or guardian.given_by_minor or guardian.given_by_named_abuser:
        return False
    return _covers(guardian, request, info, field_name, named_only=False, check_fields=True)


def _forbids(request: DecisionRequest, info: CategoryInfo, field_name: str) -> set[str]:
    hits: set[str] = set()
    recipient = str(request.recipient.sector)
    grant = request.consent
    if info.privileged and recipient in NO_PRIVILEGED:
        hits.add("privileged-never-to-enforcement-or-government")
    if info.explicit and not (
        grant is not None
        and _covers(grant, request, info, field_name, named_only=True, check_fields=False)
    ):
        hits.add("explicit-category-needs-named-consent")
    # A subpoena is not a court order: never privileged or explicit-consent records.
    if request.legal_basis == "subpoena" and (info.privileged or info.explicit):
        hits.add("subpoena-never-privileged-or-explicit")
    if recipient == "research":
        hits.add("research-sector-receives-no-fields")
    if request.purpose == "research":
        hits.add("research-purpose-releases-no-fields")
    if not _agreement_allows(request, info.name):
        hits.add("agreement-flow-required")
    if grant is not None and grant.given_by_minor and not _guardian_ok(request, info, field_name):
        hits.add("minor-consent-needs-guardian")
    if grant is not None and grant.given_by_named_abuser:
        hits.add("named-abuser-cannot-consent")
    return hits


def _permits(request: DecisionRequest, info: CategoryInfo, field_name: str) -> set[str]:
    hits: set[str] = set()
    basis = request.legal_basis
    grant = request.consent
    if grant is not None and _covers(
        grant, request, info, field_name, named_only=False, check_fields=True
    ):
        hits.add("consent-covers-release")
    if basis == "court_order" and not info.privileged:
        hits.add("court-order-non-privileged")
    if (
        basis == "mandated_report"
        and str(request.recipient.sector) in MANDATED_SECTORS
        and info.name in MANDATED_CATEGORIES
    ):
        hits.add("mandated-report-to-child-welfare-or-police")
    if (
        basis == "emergency"
        and request.justification_given
        and request.actor.org_id == request.sender.id
        and "supervisor" in request.actor.roles
        and info.name in EMERGENCY_CATEGORIES
    ):
        hits.add("emergency-supervisor-safety-categories")
    return hits


def decide(request: DecisionRequest, taxonomy: Taxonomy) -> tuple[ModelDecision, ...]:
    out: list[ModelDecision] = []
    for field in request.fields:
        if request.purpose not in taxonomy.purposes:
            out.append(
                ModelDecision(field.name, field.category, False, frozenset({"unknown-purpose"}))
            )
            continue
        if request.legal_basis not in taxonomy.legal_bases:
            out.append(
                ModelDecision(field.name, field.category, False, frozenset({"unknown-legal-basis"}))
            )
            continue
        info = taxonomy.categories.get(field.category)
        if info is None:
            out.append(
                ModelDecision(field.name, field.category, False, frozenset({"unknown-category"}))
            )
            continue
        forbids = _forbids(request, info, field.name)
        if forbids:
            out.append(ModelDecision(field.name, field.category, False, frozenset(forbids)))
            continue
        permits = _permits(request, info, field.name)
        if permits:
            out.append(ModelDecision(field.name, field.category, True, frozenset(permits)))
        else:
            out.append(
                ModelDecision(field.name, field.category, False, frozenset({"default-deny"}))
            )
    return tuple(out)
