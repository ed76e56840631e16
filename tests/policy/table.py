"""The decision table: one or more cases for every default rule of DESIGN.md
section 5, each naming the rule (policy id) that must decide it. Shared by the
table test and the mutation test (every shipped policy must decide some case)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from service.policy.inputs import AgreementFlow, DecisionRequest
from service.sectors import Sector
from tests.policy.support import NOW, ORGS, SECOND, VSP, all_purposes, consent, request


@dataclass(frozen=True)
class Case:
    id: str
    request: DecisionRequest
    allowed: bool
    policy: str


def _with_consent(req: DecisionRequest, **kw: object) -> DecisionRequest:
    assert req.consent is not None
    return dataclasses.replace(req, consent=dataclasses.replace(req.consent, **kw))


LE = Sector.law_enforcement
_base = request()
_police = request(LE, purpose="investigation", categories=("counseling_notes",))
_minor = _with_consent(request(), given_by_minor=True)
_guardian = consent(ORGS[Sector.shelter], "services_referral", {"contact"})
_flow = AgreementFlow(
    from_sector=Sector.victim_services,
    to_sector=Sector.shelter,
    purposes=frozenset({"services_referral"}),
    categories=frozenset({"contact"}),
    effective_from=NOW - timedelta(days=10),
    effective_to=NOW + timedelta(days=10),
)
_emergency = {"purpose": "emergency_contact", "basis": "emergency", "with_consent": False}

CASES: tuple[Case, ...] = (
    # Basis required.
    Case("no_basis_denies", request(with_consent=False), False, "default-deny"),
    Case(
        "subpoena_alone_denies",
        request(LE, purpose="investigation", basis="subpoena", with_consent=False),
        False,
        "default-deny",
    ),
    Case("live_consent_allows", _base, True, "consent-covers-release"),
    Case(
        "D02_consent_expired_one_second_ago_denies",
        _with_consent(_base, expires_at=NOW - SECOND),
        False,
        "default-deny",
    ),
    Case(
        "D02_consent_expiring_at_now_denies",
        _with_consent(_base, expires_at=NOW),
        False,
        "default-deny",
    ),
    Case(
        "D02_consent_expires_in_one_second_allows",
        _with_consent(_base, expires_at=NOW + SECOND),
        True,
        "consent-covers-release",
    ),
    Case(
        "D02_consent_not_yet_valid_denies",
        _with_consent(_base, valid_from=NOW + SECOND),
        False,
        "default-deny",
    ),
    Case(
        "D02_consent_valid_from_now_allows",
        _with_consent(_base, valid_from=NOW),
        True,
        "consent-covers-release",
    ),
    Case(
        "D01_revoked_consent_denies",
        _with_consent(_base, revoked_at=NOW - SECOND),
        False,
        "default-deny",
    ),
    Case(
        "consent_for_another_recipient_denies",
        _with_consent(_base, recipients=frozenset({ORGS[LE].id})),
        False,
        "default-deny",
    ),
    Case(
        "consent_for_another_purpose_denies",
        _with_consent(_base, purposes=frozenset({"benefits"})),
        False,
        "default-deny",
    ),
    Case(
        "consent_for_another_category_denies",
        _with_consent(_base, categories=frozenset({"needs"})),
        False,
        "default-deny",
    ),
    Case(
        "consent_recorded_by_another_org_denies",
        _with_consent(_base, owner_org=ORGS[Sector.shelter].id),
        False,
        "default-deny",
    ),
    Case(
        "consent_empty_recipients_denies",
        _with_consent(_base, recipients=frozenset()),
        False,
        "default-deny",
    ),
    Case(
        "consent_empty_categories_denies",
        _with_consent(_base, categories=frozenset()),
        False,
        "default-deny",
    ),
    Case(
        "consent_named_fields_exclude_field_denies",
        _with_consent(_base, fields=frozenset({"other"})),
        False,
        "default-deny",
    ),
    Case(
        "consent_named_fields_include_field_allows",
        _with_consent(_base, fields=frozenset({"contact_field"})),
        True,
        "consent-covers-release",
    ),
    Case(
        "consent_empty_named_fields_denies",
        _with_consent(_base, fields=frozenset()),
        False,
        "default-deny",
    ),
    Case(
        "court_order_allows_non_privileged",
        request(
            LE,
            purpose="investigation",
            basis="court_order",
            with_consent=False,
            categories=("case_summary",),
        ),
        True,
        "court-order-non-privileged",
    ),
    Case(
        "court_order_privileged_to_legal_services_denies",
        request(
            Sector.legal_services,
            purpose="legal_representation",
            basis="court_order",
            with_consent=False,
            categories=("counseling_notes",),
        ),
        False,
        "default-deny",
    ),
    Case(
        "mandated_report_to_child_welfare_allows",
        request(
            Sector.child_welfare,
            purpose="case_coordination",
            basis="mandated_report",
            with_consent=False,
            categories=("children",),
        ),
        True,
        "mandated-report-to-child-welfare-or-police",
    ),
    Case(
        "C13_mandated_report_to_sector_not_named_denies",
        request(
            Sector.healthcare,
            purpose="healthcare",
            basis="mandated_report",
            with_consent=False,
            categories=("children",),
        ),
        False,
        "default-deny",
    ),
    # Privileged categories.
    Case(
        "C01_counseling_notes_to_law_enforcement_with_consent_denies",
        _police,
        False,
        "privileged-never-to-enforcement-or-government",
    ),
    Case(
        "C01_counseling_notes_to_prosecution_on_court_order_denies",
        request(
            Sector.prosecution,
            purpose="prosecution",
            basis="court_order",
            categories=("counseling_notes",),
        ),
        False,
        "privileged-never-to-enforcement-or-government",
    ),
    Case(
        "C01_counseling_notes_to_government_in_emergency_denies",
        request(
            Sector.government,
            categories=("counseling_notes",),
            justified=True,
            roles=frozenset({"supervisor"}),
            purpose="emergency_contact",
            basis="emergency",
        ),
        False,
        "privileged-never-to-enforcement-or-government",
    ),
    Case(
        "counseling_notes_to_legal_services_with_consent_allows",
        request(
            Sector.legal_services, purpose="legal_representation", categories=("counseling_notes",)
        ),
        True,
        "consent-covers-release",
    ),
    # Explicit-consent categories.
    Case(
        "C03_immigration_status_wildcard_consent_denies",
        request(categories=("immigration_status",), consent_categories={"*"}),
        False,
        "explicit-category-needs-named-consent",
    ),
    Case(
        "C03_immigration_status_named_consent_allows",
        request(categories=("immigration_status",)),
        True,
        "consent-covers-release",
    ),
    Case(
        "C03_substance_use_wildcard_consent_denies",
        request(categories=("substance_use",), consent_categories={"*"}),
        False,
        "explicit-category-needs-named-consent",
    ),
    Case(
        "C03_substance_use_named_consent_allows",
        request(categories=("substance_use",)),
        True,
        "consent-covers-release",
    ),
    Case(
        "wildcard_consent_covers_ordinary_category",
        request(consent_categories={"*"}),
        True,
        "consent-covers-release",
    ),
    Case(
        "C13_substance_use_on_subpoena_denies",
        request(
            LE,
            purpose="investigation",
            basis="subpoena",
            with_consent=False,
            categories=("substance_use",),
        ),
        False,
        "explicit-category-needs-named-consent",
    ),
    Case(
        "C13_substance_use_on_subpoena_even_with_named_consent_denies",
        request(LE, purpose="investigation", basis="subpoena", categories=("substance_use",)),
        False,
        "subpoena-never-privileged-or-explicit",
    ),
    Case(
        "subpoena_with_consent_for_an_ordinary_category_allows",
        request(LE, purpose="investigation", basis="subpoena", categories=("contact",)),
        True,
        "consent-covers-release",
    ),
    Case(
        "substance_use_on_court_order_without_consent_denies",
        request(
            LE,
            purpose="investigation",
            basis="court_order",
            with_consent=False,
            categories=("substance_use",),
        ),
        False,
        "explicit-category-needs-named-consent",
    ),
    # Research.
    Case(
        "C06_research_sector_with_full_consent_denies",
        request(Sector.research, purpose="research", categories=("needs",)),
        False,
        "research-sector-receives-no-fields",
    ),
    Case(
        "research_sector_any_purpose_denies",
        request(Sector.research, purpose="case_coordination", categories=("needs",)),
        False,
        "research-sector-receives-no-fields",
    ),
    Case(
        "research_purpose_to_any_sector_denies",
        request(Sector.healthcare, purpose="research", categories=("needs",)),
        False,
        "research-purpose-releases-no-fields",
    ),
    # Emergency.
    Case(
        "C14_emergency_by_caseworker_denies",
        request(LE, **_emergency, justified=True),
        False,
        "default-deny",
    ),
    Case(
        "C14_emergency_by_supervisor_without_justification_denies",
        request(LE, **_emergency, roles=frozenset({"supervisor"})),
        False,
        "default-deny",
    ),
    Case(
        "C14_emergency_by_supervisor_for_contact_allows",
        request(LE, **_emergency, roles=frozenset({"supervisor"}), justified=True),
        True,
        "emergency-supervisor-safety-categories",
    ),
    Case(
        "C14_emergency_by_supervisor_for_case_summary_denies",
        request(
            LE,
            **_emergency,
            roles=frozenset({"supervisor"}),
            justified=True,
            categories=("case_summary",),
        ),
        False,
        "default-deny",
    ),
    Case(
        "emergency_by_supervisor_of_another_org_denies",
        dataclasses.replace(
            request(LE, **_emergency, roles=frozenset({"supervisor"}), justified=True),
            actor=dataclasses.replace(
                request().actor, org_id=ORGS[LE].id, roles=frozenset({"supervisor"})
            ),
        ),
        False,
        "default-deny",
    ),
    # Collaboration agreements.
    Case(
        "no_shared_collaboration_denies", request(agreements=()), False, "agreement-flow-required"
    ),
    Case(
        "agreement_without_the_flow_denies",
        request(agreements=(dataclasses.replace(_flow, purposes=frozenset({"benefits"})),)),
        False,
        "agreement-flow-required",
    ),
    Case(
        "agreement_flow_to_another_sector_denies",
        request(agreements=(dataclasses.replace(_flow, to_sector=Sector.healthcare),)),
        False,
        "agreement-flow-required",
    ),
    Case(
        "agreement_flow_with_empty_categories_denies",
        request(agreements=(dataclasses.replace(_flow, categories=frozenset()),)),
        False,
        "agreement-flow-required",
    ),
    Case(
        "agreement_with_the_flow_allows",
        request(agreements=(_flow,)),
        True,
        "consent-covers-release",
    ),
    Case(
        "C10_agreement_not_yet_in_effect_denies",
        request(agreements=(dataclasses.replace(_flow, effective_from=NOW + SECOND),)),
        False,
        "agreement-flow-required",
    ),
    Case(
        "C10_agreement_ended_denies",
        request(agreements=(dataclasses.replace(_flow, effective_to=NOW),)),
        False,
        "agreement-flow-required",
    ),
    # Minors and guardians.
    Case(
        "C15_minor_consent_without_guardian_denies", _minor, False, "minor-consent-needs-guardian"
    ),
    Case(
        "C15_minor_consent_with_expired_guardian_consent_denies",
        _with_consent(_minor, guardian=dataclasses.replace(_guardian, expires_at=NOW)),
        False,
        "minor-consent-needs-guardian",
    ),
    Case(
        "minor_consent_with_guardian_consent_allows",
        _with_consent(_minor, guardian=_guardian),
        True,
        "consent-covers-release",
    ),
    Case(
        "C15_consent_given_by_named_abuser_denies",
        _with_consent(_base, given_by_named_abuser=True),
        False,
        "named-abuser-cannot-consent",
    ),
    Case(
        "guardian_who_is_named_abuser_denies",
        _with_consent(_minor, guardian=dataclasses.replace(_guardian, given_by_named_abuser=True)),
        False,
        "minor-consent-needs-guardian",
    ),
    # Vocabulary (C04): near-misses are unknown, never matched.
    Case(
        "C04_unknown_category_spelling_denies",
        request(categories=("Counseling_Notes",)),
        False,
        "unknown-category",
    ),
    Case(
        "C04_unknown_purpose_spelling_denies",
        request(purpose="services_referral ", consent_categories={"contact"}),
        False,
        "unknown-purpose",
    ),
    Case(
        "C04_unknown_legal_basis_denies",
        request(basis="Court_Order", with_consent=False),
        False,
        "unknown-legal-basis",
    ),
)

assert len({c.id for c in CASES}) == len(CASES)
assert all_purposes()
assert VSP.sector is Sector.victim_services
