"""The explain dry run: what the door would decide, for a hypothetical release.

Explain builds exactly the inputs a real decision would get (the caller's
organization as sender, the recipient's sector from its record, the agreements
both share now, both organizations' stored rules) around a hypothetical consent,
and writes nothing.

Besides the decision, explain gives each category an outlook (DESIGN.md's
"allowed, needs consent, never"): a denied category is `never` when even the
broadest consent (this recipient, this purpose, the category named, valid now,
given by an adult) would not release it, so a caseworker does not go and ask a
survivor for a consent that cannot help (SECURITY-TESTS C06).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal
from service.clock import Clock
from service.collaborations.binding import PairAgreement, flows_of, pair_agreements
from service.errors import ProblemItem, RuleViolationError
from service.organizations.models import Organization
from service.organizations.rules import org_rules_for
from service.policy.decisions import Decision
from service.policy.engine import PolicyEngine, decide_categories
from service.policy.inputs import WILDCARD, Actor, ConsentInForce, DecisionRequest, OrgRef
from service.policy.schemas import ExplainRequest, HypotheticalConsent
from service.sectors import Sector
from service.vocabulary import Vocabulary

Outlook = Literal["allowed", "needs_consent", "never"]


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    outlooks: Mapping[str, Outlook]  # by category
    # Each shared collaboration: the version in force and the signatures missing.
    agreements: Sequence[PairAgreement] = ()


def _check_explain(
    data: ExplainRequest, vocabulary: Vocabulary, legal_bases: Sequence[str]
) -> list[ProblemItem]:
    problems = vocabulary.check_purposes("/purpose", [data.purpose])
    problems = [ProblemItem("/purpose", p.message) for p in problems]
    if data.legal_basis not in legal_bases:
        problems.append(ProblemItem("/legal_basis", "unknown legal basis"))
    problems += vocabulary.check_categories("/categories", data.categories)
    consent = data.consent
    if consent is not None:
        if not consent.recipients:
            problems.append(ProblemItem("/consent/recipients", "at least one recipient"))
        problems += vocabulary.check_purposes("/consent/purposes", consent.purposes)
        # "*" is checked in place, so each problem's path points at the value itself.
        problems += vocabulary.check_list(
            "/consent/categories",
            consent.categories,
            vocabulary.categories | {WILDCARD},
            "category",
        )
        if consent.valid_from is not None and consent.expires_at <= consent.valid_from:
            problems.append(ProblemItem("/consent/expires_at", "must be after valid_from"))
    return problems


def _consent(
    consent: HypotheticalConsent | None, owner: uuid.UUID, now: datetime
) -> ConsentInForce | None:
    """The hypothetical grant as a real one recorded at `now` would be: without
    `valid_from` it starts at `now`, the instant of the decision (a consent recorded
    without a start is live at once: service/consents/service.py)."""
    if consent is None:
        return None
    return ConsentInForce(
        owner_org=owner,
        recipients=frozenset(consent.recipients),
        purposes=frozenset(consent.purposes),
        categories=frozenset(consent.categories),
        valid_from=consent.valid_from or now,
        expires_at=consent.expires_at,
        fields=frozenset(consent.fields) if consent.fields is not None else None,
    )


async def explain(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    data: ExplainRequest,
    clock: Clock,
) -> Explanation:
    vocabulary = engine.taxonomy.vocabulary
    problems = _check_explain(data, vocabulary, list(engine.taxonomy.legal_bases))
    recipient = await session.get(Organization, data.recipient_org_id)
    if recipient is None or not recipient.active:
        problems.append(ProblemItem("/recipient_org_id", "no such active organization"))
    if problems:
        raise RuleViolationError(errors=problems)
    assert recipient is not None  # noqa: S101 - checked above
    now = clock.now()  # one instant: the decision's, and the default consent start
    standing = await pair_agreements(session, principal.org_id, recipient.id)
    request = DecisionRequest(
        actor=Actor(org_id=principal.org_id, roles=frozenset(r.value for r in principal.roles)),
        sender=OrgRef(id=principal.org_id, sector=principal.sector),
        recipient=OrgRef(id=recipient.id, sector=Sector(recipient.sector)),
        subject_owner=principal.org_id,
        purpose=data.purpose,
        legal_basis=data.legal_basis,
        at=now,
        fields=(),
        consent=_consent(data.consent, principal.org_id, now),
        agreements=tuple(
            flow for a in standing if a.in_force is not None for flow in flows_of(a.in_force)
        ),
        justification_given=data.justification_given,
    )
    rules = await org_rules_for(session, engine, [principal.org_id, recipient.id])
    decision = decide_categories(engine, request, data.categories, org_rules=rules)
    outlooks: dict[str, Outlook] = {f.category: "allowed" for f in decision.allowed}
    if decision.denied:
        denied = [f.category for f in decision.denied]
        best_case = decide_categories(
            engine,
            replace(request, consent=_broadest_consent(request, denied)),
            denied,
            org_rules=rules,
        )
        for f in best_case.fields:
            outlooks[f.category] = "needs_consent" if f.allowed else "never"
    return Explanation(decision=decision, outlooks=outlooks, agreements=standing)


def _broadest_consent(request: DecisionRequest, categories: Sequence[str]) -> ConsentInForce:
    """The most a survivor could consent to for these categories: this recipient,
    this purpose, each category named (a wildcard never covers an explicit one),
    no field restriction, valid now, given by an adult. The real consent's other
    conditions (e.g. a minor's guardian) can only deny more."""
    return ConsentInForce(
        owner_org=request.subject_owner,
        recipients=frozenset({request.recipient.id}),
        purposes=frozenset({request.purpose}),
        categories=frozenset(categories),
        valid_from=request.at,
        expires_at=request.at + timedelta(days=1),
    )
