"""The decision cache (service/policy/cache.py): a cached engine decides exactly as an
uncached one and as the reference model, across policy, membership, consent and
org-rule changes (Hypothesis); a change in any input that decides an outcome makes
Cedar decide again; the decision time is keyed by its order against every time a
policy compares it with, or exactly when a policy reads it in any other way."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import cedarpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.policy.cache import LRUCache, now_constants, time_class
from service.policy.decisions import Decision
from service.policy.engine import CedarPolicyEngine
from service.policy.inputs import (
    Actor,
    AgreementFlow,
    ConsentInForce,
    DecisionRequest,
    FieldRef,
    OrgRef,
    to_micros,
)
from service.policy.loader import build_policy_set
from service.policy.org_rules import OrgRules
from service.sectors import Sector
from tests.policy.reference_model import decide as model_decide
from tests.policy.strategies import decision_requests
from tests.policy.support import NOW, ORGS, VSP, default_set, policy_files, request

SECOND = timedelta(seconds=1)
FORBID_HEALTH = """
@id("no-health")
@reason("We never share health records.")
forbid (principal, action == Action::"release", resource) when { resource.name == "health" };
"""


def _forbid_from(moment: int) -> str:
    return f"""
@id("not-after")
@reason("Nothing leaves after this instant.")
forbid (principal, action == Action::"release", resource) when {{ principal.now >= {moment} }};
"""


ARITHMETIC = """
@id("odd-arithmetic")
@reason("A rule that reads the time in arithmetic.")
forbid (principal, action == Action::"release", resource) when { principal.now - 1 < 0 };
"""


@functools.cache
def _cached() -> CedarPolicyEngine:
    return CedarPolicyEngine(default_set(), validate_requests=True)


@functools.cache
def _uncached() -> CedarPolicyEngine:
    return CedarPolicyEngine(default_set(), validate_requests=True, decision_cache_size=0)


@functools.cache
def _changed_set_engines() -> tuple[CedarPolicyEngine, CedarPolicyEngine]:
    """A policy change: the research policy removed (a different version)."""
    files = {k: v for k, v in policy_files().items() if k != "research.cedar"}
    changed = build_policy_set(files)
    assert changed.version != default_set().version
    return CedarPolicyEngine(changed), CedarPolicyEngine(changed, decision_cache_size=0)


def _rules(engine: CedarPolicyEngine, org: uuid.UUID, text: str, version: int = 1) -> OrgRules:
    return engine.compile_org_rules(org_id=org, version=version, cedar_text=text)


def _same(a: Decision, b: Decision) -> None:
    assert a == b


def _agree_with_model(decision: Decision, request: DecisionRequest) -> None:
    engine = [(f.name, f.category, f.allowed, frozenset(f.policy_ids)) for f in decision.fields]
    model = [
        (f.name, f.category, f.allowed, f.policies)
        for f in model_decide(request, default_set().taxonomy)
    ]
    assert engine == model


def _variants(request: DecisionRequest, shift: int) -> list[tuple[DecisionRequest, bool]]:
    """(request, org rules apply) pairs: the request changed in time, consent,
    membership and org rules, each decided after the others on one cached engine."""
    out = [(request, False), (dataclasses.replace(request, at=request.at + shift * SECOND), False)]
    consent = request.consent
    if consent is not None:
        revoked = dataclasses.replace(consent, revoked_at=request.at)
        out.append((dataclasses.replace(request, consent=revoked), False))
        expired = dataclasses.replace(consent, expires_at=request.at)
        out.append((dataclasses.replace(request, consent=expired), False))
    out.append((dataclasses.replace(request, consent=None), False))
    out.append((dataclasses.replace(request, agreements=()), False))  # membership ended
    out.append((dataclasses.replace(request, agreements=request.agreements[:1]), False))
    out.append((request, True))  # org rules apply
    out.append((request, False))  # and no longer
    return out


@settings(max_examples=150)
@given(decision_requests(), st.integers(-3, 3))
def test_cached_decisions_equal_uncached_ones_and_the_reference_model(
    request: DecisionRequest, shift: int
) -> None:
    cached, uncached = _cached(), _uncached()
    rules = [_rules(cached, request.sender.id, FORBID_HEALTH)]
    for _ in range(2):  # the second round is answered from the cache
        for variant, with_rules in _variants(request, shift):
            applied = rules if with_rules else []
            got = cached.decide(variant, org_rules=applied)
            _same(got, uncached.decide(variant, org_rules=applied))
            if not with_rules:
                _agree_with_model(got, variant)


@settings(max_examples=60)
@given(decision_requests(), st.integers(-3, 3))
def test_a_policy_change_is_decided_by_the_new_policies(
    request: DecisionRequest, shift: int
) -> None:
    changed, changed_uncached = _changed_set_engines()
    moved = dataclasses.replace(request, at=request.at + shift * SECOND)
    for variant in (request, moved, request):
        _same(changed.decide(variant), changed_uncached.decide(variant))
        _cached().decide(variant)  # the old set's cache is not the new set's


@settings(max_examples=60)
@given(decision_requests(), st.integers(-2, 2))
def test_org_rules_that_read_the_time_are_decided_at_the_time(
    request: DecisionRequest, shift: int
) -> None:
    cached, uncached = _cached(), _uncached()
    for text in (_forbid_from(to_micros(NOW)), _forbid_from(to_micros(NOW) + 1), ARITHMETIC):
        rules = [_rules(cached, request.recipient.id, text)]
        for at in (NOW - SECOND, NOW, NOW + shift * SECOND, NOW + timedelta(microseconds=1)):
            variant = dataclasses.replace(request, at=at)
            _same(
                cached.decide(variant, org_rules=rules),
                uncached.decide(variant, org_rules=rules),
            )


# --- a change in any input is decided again ------------------------------------------


class _CedarCalls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = cedarpy.is_authorized_batch

        def counting(*args: Any, **kw: Any) -> Any:
            self.count += 1
            return real(*args, **kw)

        monkeypatch.setattr(cedarpy, "is_authorized_batch", counting)


def _base() -> DecisionRequest:
    base = request(Sector.shelter, categories=("contact", "needs", "health"))
    assert base.consent is not None
    guardian = dataclasses.replace(
        base.consent, valid_from=NOW - timedelta(days=2), expires_at=NOW + timedelta(days=9)
    )
    consent = dataclasses.replace(base.consent, given_by_minor=True, guardian=guardian)
    return dataclasses.replace(base, consent=consent)


def _consent(change: Callable[[ConsentInForce], ConsentInForce]) -> Callable[[Any], Any]:
    return lambda r: dataclasses.replace(r, consent=change(r.consent))


def _guardian(change: Callable[[ConsentInForce], ConsentInForce]) -> Callable[[Any], Any]:
    def on_guardian(consent: ConsentInForce) -> ConsentInForce:
        assert consent.guardian is not None
        return dataclasses.replace(consent, guardian=change(consent.guardian))

    return _consent(on_guardian)


def _flow(**kw: Any) -> Callable[[Any], Any]:
    def change(r: DecisionRequest) -> DecisionRequest:
        flows = [f for f in r.agreements if f.to_sector == r.recipient.sector]
        assert len(flows) == 1
        others = [f for f in r.agreements if f is not flows[0]]
        return dataclasses.replace(r, agreements=(*others, dataclasses.replace(flows[0], **kw)))

    return change


OTHER = ORGS[Sector.healthcare]
CONSENT_CHANGES: dict[str, Callable[[ConsentInForce], ConsentInForce]] = {
    "owner_org": lambda c: dataclasses.replace(c, owner_org=OTHER.id),
    "recipients": lambda c: dataclasses.replace(c, recipients=c.recipients | {OTHER.id}),
    "purposes": lambda c: dataclasses.replace(c, purposes=c.purposes | {"research"}),
    "categories": lambda c: dataclasses.replace(c, categories=c.categories - {"needs"}),
    "valid_from": lambda c: dataclasses.replace(c, valid_from=c.valid_from - SECOND),
    "expires_at": lambda c: dataclasses.replace(c, expires_at=c.expires_at + SECOND),
    "fields": lambda c: dataclasses.replace(c, fields=frozenset({"contact_field"})),
    "revoked_at": lambda c: dataclasses.replace(c, revoked_at=NOW + timedelta(days=5)),
    "given_by_minor": lambda c: dataclasses.replace(c, given_by_minor=not c.given_by_minor),
    "given_by_named_abuser": lambda c: dataclasses.replace(c, given_by_named_abuser=True),
    "guardian": lambda c: dataclasses.replace(c, guardian=None),
}
CHANGES: dict[str, Callable[[Any], Any]] = {
    "actor.org_id": lambda r: dataclasses.replace(r, actor=Actor(OTHER.id, r.actor.roles)),
    "actor.roles": lambda r: dataclasses.replace(
        r, actor=Actor(r.actor.org_id, r.actor.roles | {"supervisor"})
    ),
    "sender": lambda r: dataclasses.replace(r, sender=OrgRef(OTHER.id, r.sender.sector)),
    "sender.sector": lambda r: dataclasses.replace(
        r, sender=OrgRef(r.sender.id, Sector.legal_services)
    ),
    "recipient": lambda r: dataclasses.replace(r, recipient=OrgRef(OTHER.id, r.recipient.sector)),
    "recipient.sector": lambda r: dataclasses.replace(
        r, recipient=OrgRef(r.recipient.id, Sector.healthcare)
    ),
    "subject_owner": lambda r: dataclasses.replace(r, subject_owner=OTHER.id),
    "purpose": lambda r: dataclasses.replace(r, purpose="research"),
    "legal_basis": lambda r: dataclasses.replace(r, legal_basis="court_order"),
    "justification_given": lambda r: dataclasses.replace(r, justification_given=True),
    "fields.category": lambda r: r.with_fields([FieldRef("contact_field", "location")]),
    "at (across a consent edge)": lambda r: dataclasses.replace(
        r, at=r.consent.expires_at + timedelta(microseconds=1)
    ),
    "agreements (a flow's categories)": _flow(categories=frozenset({"contact"})),
    "agreements (a flow's purposes)": _flow(purposes=frozenset({"research"})),
    "agreements (a flow's sectors)": _flow(from_sector=Sector.shelter),
    "agreements (a flow's end)": _flow(effective_to=NOW),
    "agreements (a flow's start)": _flow(effective_from=NOW + SECOND),
    "agreements (membership ended)": lambda r: dataclasses.replace(r, agreements=()),
    "consent (none)": lambda r: dataclasses.replace(r, consent=None),
    **{f"consent.{k}": _consent(v) for k, v in CONSENT_CHANGES.items()},
    **{
        f"consent.guardian.{k}": _guardian(v) for k, v in CONSENT_CHANGES.items() if k != "guardian"
    },
}


def test_the_changes_name_every_input() -> None:
    """A new input added to a request or consent must get a case above."""
    named = {k.split(" ")[0].split(".")[0] for k in CHANGES}
    assert {f.name for f in dataclasses.fields(DecisionRequest)} <= named
    consent_named = {k.split(".")[1] for k in CHANGES if k.startswith("consent.")}
    assert {f.name for f in dataclasses.fields(ConsentInForce)} <= consent_named
    assert {f.name for f in dataclasses.fields(AgreementFlow)} <= {
        "from_sector",
        "to_sector",
        "purposes",
        "categories",
        "effective_from",
        "effective_to",
    }


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_change_in_any_input_is_decided_again(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    engine = CedarPolicyEngine(default_set(), validate_requests=True)
    base = _base()
    engine.decide(base)
    calls = _CedarCalls(monkeypatch)
    engine.decide(base)
    assert calls.count == 0  # the same question: answered from the cache
    changed = CHANGES[name](base)
    assert changed != base
    got = engine.decide(changed)
    assert calls.count == 1, name
    _same(got, _uncached().decide(changed))


def test_a_change_of_policy_set_or_org_rules_is_decided_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = CedarPolicyEngine(default_set(), validate_requests=True)
    base = _base()
    first = _rules(engine, base.recipient.id, FORBID_HEALTH, version=1)
    second = _rules(engine, base.recipient.id, FORBID_HEALTH + " ", version=2)
    engine.decide(base, org_rules=[first])
    calls = _CedarCalls(monkeypatch)
    engine.decide(base, org_rules=[first])
    assert calls.count == 0
    for rules in ([second], [], [first, _rules(engine, base.sender.id, FORBID_HEALTH)]):
        before = calls.count
        got = engine.decide(base, org_rules=rules)
        assert calls.count == before + 1
        _same(got, _uncached().decide(base, org_rules=rules))
    other, _ = _changed_set_engines()
    before = calls.count
    other.decide(base)
    assert calls.count == before + 1  # a cache belongs to one engine, one policy set


def test_the_time_is_keyed_by_its_order_against_the_consent_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = CedarPolicyEngine(default_set(), validate_requests=True)
    base = _base()
    consent = base.consent
    assert consent is not None
    assert consent.guardian is not None
    same_class = [NOW + SECOND, NOW + timedelta(days=1), consent.guardian.expires_at - SECOND]
    crossing = [consent.guardian.expires_at, consent.valid_from - timedelta(microseconds=1)]
    expected = {at: _uncached().decide(dataclasses.replace(base, at=at)) for at in same_class}
    expected.update({at: _uncached().decide(dataclasses.replace(base, at=at)) for at in crossing})
    engine.decide(base)
    calls = _CedarCalls(monkeypatch)
    for at in same_class:
        _same(engine.decide(dataclasses.replace(base, at=at)), expected[at])
    assert calls.count == 0  # no edge crossed: the same outcomes, without Cedar
    for at in crossing:
        before = calls.count
        _same(engine.decide(dataclasses.replace(base, at=at)), expected[at])
        assert calls.count == before + 1


def test_rules_that_read_the_time_otherwise_key_the_exact_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = CedarPolicyEngine(default_set(), validate_requests=True)
    base = _base()
    rules = [_rules(engine, base.recipient.id, ARITHMETIC)]
    engine.decide(base, org_rules=rules)
    calls = _CedarCalls(monkeypatch)
    engine.decide(base, org_rules=rules)
    assert calls.count == 0
    engine.decide(dataclasses.replace(base, at=NOW + timedelta(microseconds=1)), org_rules=rules)
    assert calls.count == 1


def test_now_constants_reads_the_policies() -> None:
    shared = list(default_set().est.values())
    assert now_constants(shared) == frozenset()
    engine = _cached()
    literal = _rules(engine, VSP.id, _forbid_from(123456789))
    assert now_constants([*shared, *literal.est.values()]) == frozenset({123456789})
    arithmetic = _rules(engine, VSP.id, ARITHMETIC)
    assert now_constants([*shared, *arithmetic.est.values()]) is None
    reads_now = {"!": {"arg": {".": {"left": {"Var": "principal"}, "attr": "now"}}}}
    assert now_constants([{"conditions": [{"kind": "when", "body": reads_now}]}]) is None
    assert time_class(5, None, None) == (5,)
    assert time_class(5, None, frozenset({4, 5, 6})) == (-1, 1, 0, -1)


def test_the_cache_is_bounded() -> None:
    cache: LRUCache[int, str] = LRUCache(3)
    for i in range(10):
        cache.put(i, str(i))
    assert len(cache) == 3
    assert cache.get(0) is None
    assert cache.get(9) == "9"
    off: LRUCache[int, str] = LRUCache(0)
    off.put(1, "1")
    assert off.get(1) is None


def test_threads_sharing_one_engine_get_the_uncached_decisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cache is shared by threads (the service may decide in a thread pool); a
    context's outcomes dict overflowing (cleared) under them changes nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from service.policy import engine as engine_module

    monkeypatch.setattr(engine_module, "_GROUPS_PER_CONTEXT", 3)
    engine = CedarPolicyEngine(default_set(), validate_requests=True)
    base = _base()
    assert base.consent is not None
    names = frozenset({"f0", "f1", "f3"})  # fields named: decided field by field
    base = dataclasses.replace(base, consent=dataclasses.replace(base.consent, fields=names))
    variants = [
        base.with_fields([FieldRef(f"f{i}", c) for c in ("contact", "needs", "health")])
        for i in range(4)
    ]
    variants += [dataclasses.replace(v, at=NOW + timedelta(days=20)) for v in variants]
    expected = [_uncached().decide(v) for v in variants]

    def run(k: int) -> bool:
        return all(engine.decide(variants[(k + j) % 8]) == expected[(k + j) % 8] for j in range(40))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(8)))
