"""Policy decision speed: Cedar engine vs the plain-Python reference model.

    .venv/bin/python bench/policy.py [--iterations 3000]

Prints median and p99 latency and decisions per second for a 20-field batch
(a realistic referral: several fields per category), a 20-field batch in 19
distinct categories (worst case: one Cedar request per category) and a single
field. Not a test: figures only (issue 3 target: 20-field batch under 1 ms median).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
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


def _compare(title: str, req: DecisionRequest, engine: CedarPolicyEngine, n: int) -> None:
    taxonomy = default_set().taxonomy
    print(f"{title} ({len(req.fields)} fields, {len({f.category for f in req.fields})} categories)")
    cedar = _row("cedar", _timed(lambda: engine.decide(req), n), len(req.fields))
    model = _row(
        "reference", _timed(lambda: reference_model.decide(req, taxonomy), n), len(req.fields)
    )
    print(f"  ratio      cedar / reference = {cedar / model:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    engine = CedarPolicyEngine(default_set())
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
    print(f"policy set {engine.version[:16]}..., {len(default_set().est)} policies")
    _compare("referral batch", referral, engine, args.iterations)
    _compare("distinct-category batch", distinct, engine, args.iterations)
    _compare("single field", single, engine, args.iterations)
    allowed = sum(f.allowed for f in engine.decide(referral).fields)
    print(f"(referral batch: {allowed} of {len(referral.fields)} fields allowed)")


if __name__ == "__main__":
    main()
