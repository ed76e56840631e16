"""Policy decision speed: Cedar engine vs the plain-Python reference model, and the
decision cache (service/policy/cache.py) against the engine without it.

    .venv/bin/python bench/policy.py [--iterations 3000]

Prints median and p99 latency and decisions per second for a 20-field batch
(a realistic referral: several fields per category), a 20-field batch in 19
distinct categories (worst case: one Cedar request per category) and a single
field, each:

- `uncached`: the engine with its decision cache off (what every decision cost
  before the cache);
- `cached`: the same question again (every outcome from the cache);
- `moving`: the same parties, consent and fields, each decision a millisecond
  later than the one before (a new instant every time, as in the service: the
  cache holds the time as its order against the consent's times);
- `new`: every decision under a consent never seen before (its validity starts a
  microsecond earlier each time): all misses, the cache's own cost included;
- `reference`: the plain-Python reference model.

Not a test: figures only (issue 3 target: 20-field batch under 1 ms median; issue
26: under 0.5 ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.policy.engine import CedarPolicyEngine
from service.policy.inputs import DecisionRequest, FieldRef
from service.sectors import Sector
from tests.policy import reference_model
from tests.policy.support import default_set, request

REFERRAL_FIELDS = (
    ("given_name", "identity"), ("family_name", "identity"), ("birth_date", "identity"),
    ("id_document", "identity"), ("phone", "contact"), ("email", "contact"),
    ("safe_contact_times", "contact"), ("current_city", "location"),
    ("languages", "language"), ("interpreter", "language"), ("age_range", "demographics"),
    ("gender", "demographics"), ("services", "needs"), ("urgent_needs", "needs"),
    ("summary", "case_summary"), ("trafficking_type", "trafficking_type"),
    ("children_count", "children"), ("custody", "children"),
    ("income", "financial"), ("benefits", "financial"),
)  # fmt: skip


def _timed(call: Callable[[], object], iterations: int) -> list[float]:
    for _ in range(min(200, iterations)):  # warm caches and the allocator
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return sorted(samples)


def _row(label: str, samples: list[float], fields: int) -> float:
    median = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"  {label:<10} median {median * 1e3:8.4f} ms   p99 {p99 * 1e3:8.4f} ms   "
        f"{fields / median:12,.0f} field decisions/s"
    )
    return median


def _moving(req: DecisionRequest) -> Callable[[], object]:
    """The same request, a millisecond later at every call."""
    engine = CedarPolicyEngine(default_set())
    step = itertools.count()

    def call() -> object:
        at = req.at + timedelta(milliseconds=next(step) % 600_000)
        return engine.decide(dataclasses.replace(req, at=at))

    return call


def _new_consent(req: DecisionRequest) -> Callable[[], object]:
    """The same request under a consent never seen before, at every call."""
    engine = CedarPolicyEngine(default_set())
    assert req.consent is not None
    consent = req.consent
    step = itertools.count(1)

    def call() -> object:
        start = consent.valid_from - timedelta(microseconds=next(step))
        return engine.decide(
            dataclasses.replace(req, consent=dataclasses.replace(consent, valid_from=start))
        )

    return call


def _compare(title: str, req: DecisionRequest, n: int) -> float:
    taxonomy = default_set().taxonomy
    fields = len(req.fields)
    print(f"{title} ({fields} fields, {len({f.category for f in req.fields})} categories)")
    uncached = CedarPolicyEngine(default_set(), decision_cache_size=0)
    cached = CedarPolicyEngine(default_set())
    before = _row("uncached", _timed(lambda: uncached.decide(req), n), fields)
    after = _row("cached", _timed(lambda: cached.decide(req), n), fields)
    moving = _row("moving", _timed(_moving(req), n), fields)
    new = _row("new", _timed(_new_consent(req), n), fields)
    model = _row("reference", _timed(lambda: reference_model.decide(req, taxonomy), n), fields)
    print(
        f"  ratios     uncached / reference = {before / model:5.1f}x   "
        f"cached / uncached = {after / before:5.2f}   moving / uncached = {moving / before:5.2f}"
        f"   new / uncached = {new / before:5.2f}"
    )
    return moving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    base = request(Sector.shelter, purpose="services_referral")
    assert base.consent is not None
    categories = {c for _, c in REFERRAL_FIELDS}
    referral = dataclasses.replace(
        base.with_fields(FieldRef(n, c) for n, c in REFERRAL_FIELDS),
        consent=dataclasses.replace(base.consent, categories=frozenset(categories)),
    )
    every = sorted(default_set().taxonomy.categories)
    distinct = dataclasses.replace(
        base.with_fields(FieldRef(f"f{i}", every[i % len(every)]) for i in range(20)),
        consent=dataclasses.replace(base.consent, categories=frozenset(every)),
    )
    single = base.with_fields([FieldRef("phone", "contact")])
    print(f"policy set {default_set().version[:16]}..., {len(default_set().est)} policies")
    moving = _compare("referral batch", referral, args.iterations)
    _compare("distinct-category batch", distinct, args.iterations)
    _compare("single field", single, args.iterations)
    allowed = sum(f.allowed for f in CedarPolicyEngine(default_set()).decide(referral).fields)
    print(f"(referral batch: {allowed} of {len(referral.fields)} fields allowed)")
    verdict = "met" if moving < 0.0005 else "NOT met"
    print(f"target: 20-field batch under 0.5 ms median at moving instants: {verdict}")


if __name__ == "__main__":
    main()
