"""The decision cache: per (category, field name), the outcome the Cedar engine gave
for exactly the same inputs, so that a later identical question is answered without
Cedar, and never differently (DESIGN.md section 8: a bounded cache, safe to lose).

The key is every input the outcome depends on: the policy-set version and the
org-rule versions applied (their ids and text hashes); the actor, both parties,
the subject's owner, purpose, legal basis and justification; the consent in force
(every attribute, the guardian's too); the agreement flows in effect; the category,
and the field name when a name can matter. The one input that is not in the key
as it is, is the decision time: it is in the key as its *time class*, its order
(before, at or after) against every time it can be compared with. That is exact
only when every policy reads `principal.now` solely as one side of a comparison
whose other side is a literal number or a consent's `valid_from`, `expires_at` or
`revoked_at` (the shared policies do); `now_constants` checks this on the
policies' JSON form, and for any policy set where it does not hold the key holds
the time itself, to the microsecond (a hit then needs the very same instant).

Two questions with the same key make Cedar evaluate the same policies on entities
that differ at most in `now`, and every expression that reads `now` compares it
with a value whose order against it is the same in both: every policy evaluates
the same way, so the outcome is the same (tests/policy/test_cache.py checks this
against the uncached engine and the reference model).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from service.policy.inputs import ConsentInForce, to_micros

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_CONSENT_TIMES = frozenset({"valid_from", "expires_at", "revoked_at"})
_CONSENT_PATH = frozenset({"consent", "guardian"})
_PRINCIPAL = {"Var": "principal"}


class LRUCache(Generic[K, V]):
    """A bounded map, least recently used out first; thread-safe. `hits` and
    `misses` count lookups (for the benchmark and the tests)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def now_constants(policies: Iterable[Mapping[str, Any]]) -> frozenset[int] | None:
    """The literal numbers that policies (in Cedar's JSON form) compare
    `principal.now` with, or None when some policy reads `now` in any other way (in
    arithmetic, a function call, a set, through anything but `principal`, or
    compared with anything but a literal number or a consent time)."""
    constants: set[int] = set()
    for policy in policies:
        if not _walk(policy, constants):
            return None
    return frozenset(constants)


def _is_now(node: object) -> bool:
    if not isinstance(node, dict) or set(node) != {"."}:
        return False
    access = node["."]
    return isinstance(access, dict) and access.get("attr") == "now"


def _reads_now_of_principal(node: object) -> bool:
    return _is_now(node) and isinstance(node, dict) and node["."].get("left") == _PRINCIPAL


def _consent_time(node: object) -> bool:
    """`principal.consent.<time>` or `principal.consent.guardian.<time>`."""
    if not isinstance(node, dict) or set(node) != {"."}:
        return False
    access = node["."]
    if not isinstance(access, dict) or access.get("attr") not in _CONSENT_TIMES:
        return False
    left = access.get("left")
    steps = 0
    while left != _PRINCIPAL:
        if not isinstance(left, dict) or set(left) != {"."}:
            return False
        inner = left["."]
        if not isinstance(inner, dict) or inner.get("attr") not in _CONSENT_PATH:
            return False
        left, steps = inner.get("left"), steps + 1
    return steps >= 1


def _literal_number(node: object) -> int | None:
    if isinstance(node, dict) and set(node) == {"Value"}:
        value = node["Value"]
        if type(value) is int:
            return value
    return None


def _walk(node: object, constants: set[int]) -> bool:
    """False when `now` is read in a way the time class does not cover."""
    if isinstance(node, list):
        return all(_walk(item, constants) for item in node)
    if not isinstance(node, dict):
        return True
    if _is_now(node):
        return False  # reached other than as a side of an allowed comparison
    for op, body in node.items():
        if op in _COMPARISONS and isinstance(body, dict):
            sides = (body.get("left"), body.get("right"))
            if any(_is_now(side) for side in sides):
                if not _comparison_ok(sides, constants):
                    return False
                continue
        if not _walk(body, constants):
            return False
    return True


def _comparison_ok(sides: tuple[object, object], constants: set[int]) -> bool:
    left, right = sides
    for now_side, other in ((left, right), (right, left)):
        if not _reads_now_of_principal(now_side):
            continue
        if _consent_time(other) or _reads_now_of_principal(other):
            return True
        number = _literal_number(other)
        if number is not None:
            constants.add(number)
            return True
    return False


def _consent_times(consent: ConsentInForce | None) -> list[int]:
    out: list[int] = []
    while consent is not None:
        out += [to_micros(consent.valid_from), to_micros(consent.expires_at)]
        if consent.revoked_at is not None:
            out.append(to_micros(consent.revoked_at))
        consent = consent.guardian
    return out


def time_class(
    now: int, consent: ConsentInForce | None, constants: frozenset[int] | None
) -> tuple[int, ...]:
    """`now` (microseconds) as the key holds it: its order against every time it can
    be compared with, or, when the policies read it otherwise, itself."""
    if constants is None:
        return (now,)
    marks = sorted({*constants, *_consent_times(consent)})
    return (-1, *((now > mark) - (now < mark) for mark in marks))
