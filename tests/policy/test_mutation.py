"""Mutation check: every shipped policy, and every policy file, decides at least
one case of the table. Removing it must make some case come out differently."""

from __future__ import annotations

import dataclasses

import pytest

from service.policy.engine import CedarPolicyEngine
from service.policy.loader import POLICY_SUFFIX, build_policy_set
from tests.policy.support import default_set, policy_files
from tests.policy.table import CASES


def _failing_cases(engine: CedarPolicyEngine) -> list[str]:
    return [
        case.id
        for case in CASES
        if engine.decide(case.request).fields[0].allowed is not case.allowed
    ]


@pytest.mark.parametrize("policy_id", sorted(default_set().est))
def test_removing_any_one_policy_fails_a_case(policy_id: str) -> None:
    full = default_set()
    reduced = dataclasses.replace(
        full,
        est={k: v for k, v in full.est.items() if k != policy_id},
        meta={k: v for k, v in full.meta.items() if k != policy_id},
    )
    assert _failing_cases(CedarPolicyEngine(reduced, validate_requests=True))


@pytest.mark.parametrize(
    "file_name", sorted(n for n in policy_files() if n.endswith(POLICY_SUFFIX))
)
def test_removing_any_one_policy_file_fails_a_case(file_name: str) -> None:
    files = {k: v for k, v in policy_files().items() if k != file_name}
    engine = CedarPolicyEngine(build_policy_set(files), validate_requests=True)
    assert _failing_cases(engine)


def test_full_set_passes_every_case() -> None:
    assert _failing_cases(CedarPolicyEngine(default_set(), validate_requests=True)) == []
