"""The policy engine: a Protocol the service depends on, and its Cedar adapter.

The adapter parses the policy set once (at load), keeps the taxonomy's category
entities pre-built, and per decision adds only a small delta of entities and
makes one batch call with one request per distinct (category, field name).

Fail closed, always:
- deny wins; a field no permit applies to is denied (`default-deny`);
- Cedar skips a policy whose evaluation raises an error, which for a `forbid`
  would mean failing open: any evaluation error denies the field and names the
  policy that failed (DESIGN.md section 9);
- an unknown category, purpose or legal basis denies, never near-matches.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import cedarpy

from service.policy import cedar_encoding
from service.policy.cache import LRUCache, now_constants, time_class
from service.policy.decisions import (
    DEFAULT_DENY,
    ENGINE_SOURCE,
    UNKNOWN_CATEGORY,
    UNKNOWN_LEGAL_BASIS,
    UNKNOWN_PURPOSE,
    Decision,
    Effect,
    FieldDecision,
    PolicyRef,
)
from service.policy.inputs import (
    AgreementFlow,
    DecisionRequest,
    FieldRef,
    expand_flows,
    flows_in_effect,
    to_micros,
)
from service.policy.loader import LoadedPolicySet, PolicyMeta
from service.policy.org_rules import OrgRules, compile_org_rules
from service.policy.taxonomy import Taxonomy

_ENGINE_REASONS = {
    DEFAULT_DENY: "No policy permits this release: there is no live consent, court order "
    "or other basis that covers this recipient, purpose and category.",
    UNKNOWN_CATEGORY: "The category is not in the taxonomy; unknown categories are never released.",
    UNKNOWN_PURPOSE: "The purpose is not in the taxonomy; nothing is released for it.",
    UNKNOWN_LEGAL_BASIS: "The legal basis is not known; nothing is released on it.",
}
_ERROR_POLICY = re.compile(r"policy `([^`]*)`")
_CONSENT_COPY_OBLIGATIONS = ("attach_consent", "redisclosure_notice")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Outcome = tuple[Effect, tuple[PolicyRef, ...], tuple[str, ...]]
GroupKey = tuple[str, str]
# Outcomes kept per distinct context (service/policy/cache.py): bounded twice over.
DECISION_CACHE_SIZE = 4096
_GROUPS_PER_CONTEXT = 512


class PolicyEngine(Protocol):
    """What the rest of the service calls. Implementations fail closed."""

    @property
    def version(self) -> str: ...

    @property
    def policy_set(self) -> LoadedPolicySet: ...

    @property
    def taxonomy(self) -> Taxonomy: ...

    def decide(
        self, request: DecisionRequest, *, org_rules: Sequence[OrgRules] = ()
    ) -> Decision: ...

    def compile_org_rules(self, *, org_id: Any, version: int, cedar_text: str) -> OrgRules: ...


class _BoundedCache(Generic[K, V]):
    """A small LRU map; safe to lose (DESIGN.md section 8: only such caches are allowed)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def engine_ref(policy_id: str) -> PolicyRef:
    return PolicyRef(id=policy_id, reason=_ENGINE_REASONS[policy_id], source=ENGINE_SOURCE)


class CedarPolicyEngine:
    """The Cedar adapter. `validate_requests=True` (tests) also checks every entity
    and request against the schema; production leaves it off for speed, as the
    encoder is the only producer of both. Outcomes are cached by the exact inputs
    that decide them (service/policy/cache.py); `decision_cache_size=0` turns the
    cache off."""

    def __init__(
        self,
        policy_set: LoadedPolicySet,
        *,
        validate_requests: bool = False,
        decision_cache_size: int = DECISION_CACHE_SIZE,
    ) -> None:
        self._set = policy_set
        self._schema = policy_set.schema if validate_requests else None
        self._base = cedarpy.Entities.from_json_str(
            cedar_encoding.base_entities_json(policy_set.taxonomy), policy_set.schema
        )
        self._policies: _BoundedCache[tuple[tuple[str, str], ...], cedarpy.PolicySet] = (
            _BoundedCache(256)
        )
        self._agreements: _BoundedCache[
            tuple[frozenset[Any], tuple[str, str, str]], cedarpy.Entities
        ] = _BoundedCache(512)
        self._org_rules: _BoundedCache[tuple[str, int, str], OrgRules] = _BoundedCache(1024)
        self.outcomes: LRUCache[tuple[Any, ...], dict[GroupKey, Outcome]] = LRUCache(
            decision_cache_size
        )
        self._now_constants: _BoundedCache[tuple[Any, ...], frozenset[int] | None] = _BoundedCache(
            256
        )
        # Parse the shared set now, so a set that Cedar cannot load fails at start-up.
        self._policies.get((), lambda: self._build_policy_set(()))

    @property
    def version(self) -> str:
        return self._set.version

    @property
    def policy_set(self) -> LoadedPolicySet:
        return self._set

    @property
    def taxonomy(self) -> Taxonomy:
        return self._set.taxonomy

    def compile_org_rules(self, *, org_id: Any, version: int, cedar_text: str) -> OrgRules:
        key = (str(org_id), version, cedar_text)
        return self._org_rules.get(
            key,
            lambda: compile_org_rules(
                self._set, org_id=org_id, version=version, cedar_text=cedar_text
            ),
        )

    def _build_policy_set(self, rules: Sequence[OrgRules]) -> cedarpy.PolicySet:
        static: dict[str, Any] = dict(self._set.est)
        for rule in rules:
            static.update(rule.est)
        document = {"staticPolicies": static, "templates": {}, "templateLinks": []}
        return cedarpy.PolicySet.from_json_str(json.dumps(document))

    def _entities(
        self, request: DecisionRequest, active: frozenset[AgreementFlow]
    ) -> cedarpy.Entities:
        pair = (str(request.sender.sector), str(request.recipient.sector), request.purpose)

        def build() -> cedarpy.Entities:
            tuples = expand_flows(active, from_sector=pair[0], to_sector=pair[1], purpose=pair[2])
            flows_json = cedar_encoding.agreements_json(tuples)
            return self._base.with_added_json_str(flows_json, self._schema)

        with_flows = self._agreements.get((active, pair), build)
        return with_flows.with_added_json_str(cedar_encoding.delta_json(request), self._schema)

    def decide(self, request: DecisionRequest, *, org_rules: Sequence[OrgRules] = ()) -> Decision:
        to_micros(request.at)  # refuses a naive time before anything is decided
        parties = {request.sender.id, request.recipient.id}
        applied = sorted(
            {r.org_id: r for r in org_rules if r.org_id in parties}.values(),
            key=lambda r: str(r.org_id),
        )
        meta: dict[str, PolicyMeta] = dict(self._set.meta)
        for rule in applied:
            meta.update(rule.meta)
        decision_fields = self._decide_fields(request, applied, meta)
        return Decision(
            policy_version=self._set.version,
            org_rules=tuple(r.ref for r in applied),
            fields=decision_fields,
        )

    def _decide_fields(
        self, request: DecisionRequest, applied: list[OrgRules], meta: dict[str, PolicyMeta]
    ) -> tuple[FieldDecision, ...]:
        taxonomy = self._set.taxonomy
        refusal: str | None = None
        if request.purpose not in taxonomy.purposes:
            refusal = UNKNOWN_PURPOSE
        elif request.legal_basis not in taxonomy.legal_bases:
            refusal = UNKNOWN_LEGAL_BASIS
        # Decide once per category unless a field's name can matter: a consent that
        # names fields, or a policy that reads the name (DESIGN.md section 9).
        per_field = (
            (request.consent is not None and request.consent.restricts_fields)
            or self._set.reads_field
            or any(info.reads_field for r in applied for info in r.meta.values())
        )
        groups: dict[GroupKey, None] = {}
        for f in request.fields:
            if refusal is None and f.category in taxonomy.categories:
                groups[_group(f, per_field)] = None
        outcomes: dict[GroupKey, Outcome] = {}
        if groups:
            active = flows_in_effect(request.agreements, request.at)
            known = self._known_outcomes(request, applied, active)
            # A copy first: another thread may add to or clear the shared dict.
            outcomes = {g: o for g in groups if (o := known.get(g)) is not None}
            keys = [g for g in groups if g not in outcomes]
            if keys:
                key = tuple((str(r.org_id), r.sha256) for r in applied)
                policies = self._policies.get(key, lambda: self._build_policy_set(applied))
                results = cedarpy.is_authorized_batch(
                    [cedar_encoding.authorization_request(c, n) for c, n in keys],
                    policies,
                    self._entities(request, active),
                    self._schema,
                )
                if len(known) + len(keys) > _GROUPS_PER_CONTEXT:
                    known.clear()
                for group_key, result in zip(keys, results, strict=True):
                    decided_now = self._outcome(group_key[0], result, meta)
                    outcomes[group_key] = known[group_key] = decided_now
        decided: list[FieldDecision] = []
        for f in request.fields:
            outcome = outcomes.get(_group(f, per_field))
            if outcome is None:
                ref = engine_ref(refusal or UNKNOWN_CATEGORY)
                outcome = (Effect.deny, (ref,), ())
            effect, refs, obligations = outcome
            decided.append(FieldDecision(f.name, f.category, effect, refs, obligations))
        return tuple(decided)

    def _known_outcomes(
        self, request: DecisionRequest, applied: list[OrgRules], active: frozenset[AgreementFlow]
    ) -> dict[GroupKey, Outcome]:
        """The outcomes already decided for every input of this request but its fields
        (a dict to add to); a new, uncached dict when caching is off."""
        rules = tuple(r.ref for r in applied)
        constants = self._now_constants.get(
            rules, lambda: now_constants([*self._set.est.values(), *_rule_policies(applied)])
        )
        context = (
            self._set.version,
            rules,
            request.actor,
            request.sender,
            request.recipient,
            request.subject_owner,
            request.purpose,
            request.legal_basis,
            request.justification_given,
            request.consent,
            active,
            time_class(to_micros(request.at), request.consent, constants),
        )
        known = self.outcomes.get(context)
        if known is None:
            known = {}
            self.outcomes.put(context, known)
        return known

    def _outcome(
        self, category: str, result: cedarpy.AuthzResult, meta: dict[str, PolicyMeta]
    ) -> Outcome:
        diagnostics = result.diagnostics
        refs = [_ref(pid, meta) for pid in sorted(diagnostics.reasons)]
        if diagnostics.errors:
            # Fail closed: the policy that could not be evaluated might have been a forbid.
            failed = sorted({_failed_policy(e) for e in diagnostics.errors})
            errored = [
                PolicyRef(
                    id=pid,
                    reason="This policy could not be evaluated; the field is withheld "
                    "(fail closed).",
                    source=meta[pid].source if pid in meta else ENGINE_SOURCE,
                )
                for pid in failed
            ]
            forbids = [r for r in refs if meta.get(r.id) and meta[r.id].effect == "forbid"]
            return Effect.deny, tuple(errored + forbids), ()
        if result.allowed:
            obligations: set[str] = set()
            for pid in diagnostics.reasons:
                if pid in meta:
                    obligations.update(meta[pid].obligations)
            if self._set.taxonomy.categories[category].redisclosure_notice:
                obligations.update(_CONSENT_COPY_OBLIGATIONS)
            return Effect.allow, tuple(refs), tuple(sorted(obligations))
        return Effect.deny, tuple(refs) or (engine_ref(DEFAULT_DENY),), ()


def _rule_policies(applied: Sequence[OrgRules]) -> list[Any]:
    return [policy for rule in applied for policy in rule.est.values()]


def _group(field: FieldRef, per_field: bool) -> GroupKey:
    return (field.category, field.name if per_field else "")


def _ref(policy_id: str, meta: dict[str, PolicyMeta]) -> PolicyRef:
    info = meta.get(policy_id)
    if info is None:
        return PolicyRef(id=policy_id, reason="", source=ENGINE_SOURCE)
    return PolicyRef(id=policy_id, reason=info.reason, source=info.source)


def _failed_policy(error: str) -> str:
    match = _ERROR_POLICY.search(error)
    return match.group(1) if match else "evaluation-error"


def decide_categories(
    engine: PolicyEngine,
    request: DecisionRequest,
    categories: Sequence[str],
    *,
    org_rules: Sequence[OrgRules] = (),
) -> Decision:
    """One decision per category (explain, records-request preliminary answers):
    each category is decided as a field named after it."""
    fields = [FieldRef(name=c, category=c) for c in dict.fromkeys(categories)]
    return engine.decide(request.with_fields(fields), org_rules=org_rules)
