"""Property tests (hypothesis): the engine against the reference model (C17), and
the invariants the issue names."""

from __future__ import annotations

import dataclasses
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from service.policy.decisions import Decision
from service.policy.inputs import DecisionRequest
from service.sectors import Sector
from tests.policy.reference_model import decide as model_decide
from tests.policy.strategies import decision_requests
from tests.policy.support import default_engine, default_set

ORG_FORBID = """
@id("no-health-to-anyone")
@reason("We never share health records.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "health" || principal.purpose == "benefits" };
"""


def _summary(decision: Decision) -> list[tuple[str, str, bool, frozenset[str]]]:
    return [(f.name, f.category, f.allowed, frozenset(f.policy_ids)) for f in decision.fields]


@settings(max_examples=1000)
@given(decision_requests())
def test_C17_engine_agrees_with_reference_model(request: DecisionRequest) -> None:
    engine = [
        (f.name, f.category, f.allowed, frozenset(f.policy_ids))
        for f in default_engine().decide(request).fields
    ]
    model = [
        (f.name, f.category, f.allowed, f.policies)
        for f in model_decide(request, default_set().taxonomy)
    ]
    assert engine == model


@given(decision_requests(), st.randoms(use_true_random=False))
def test_C17_decision_does_not_depend_on_field_order(request: DecisionRequest, rnd: Random) -> None:
    shuffled = list(request.fields)
    rnd.shuffle(shuffled)
    first = {(f.name, f.category): f for f in default_engine().decide(request).fields}
    second = default_engine().decide(request.with_fields(shuffled))
    for f in second.fields:
        assert first[(f.name, f.category)] == f


@given(decision_requests())
def test_C01_counseling_notes_never_reach_enforcement_or_government(
    request: DecisionRequest,
) -> None:
    decision = default_engine().decide(request)
    if request.recipient.sector in (Sector.law_enforcement, Sector.prosecution, Sector.government):
        assert not any(f.allowed for f in decision.fields if f.category == "counseling_notes")


@given(decision_requests())
def test_org_forbid_never_turns_a_deny_into_an_allow(request: DecisionRequest) -> None:
    engine = default_engine()
    rules = engine.compile_org_rules(org_id=request.sender.id, version=1, cedar_text=ORG_FORBID)
    before = engine.decide(request)
    after = engine.decide(request, org_rules=[rules])
    for b, a in zip(before.fields, after.fields, strict=True):
        assert b.allowed or not a.allowed
        if a.category == "health" or request.purpose == "benefits":
            assert not a.allowed


@given(decision_requests(), st.sampled_from(["recipients", "purposes", "categories", "fields"]))
def test_consent_with_an_empty_list_never_allows(request: DecisionRequest, empty: str) -> None:
    if request.consent is None:
        return
    request = dataclasses.replace(
        request,
        legal_basis="consent",
        consent=dataclasses.replace(request.consent, **{empty: frozenset()}),
    )
    assert not any(f.allowed for f in default_engine().decide(request).fields)
