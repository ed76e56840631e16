"""Every default rule of DESIGN.md section 5, as a table (tests/policy/table.py)."""

from __future__ import annotations

import pytest

from tests.policy.reference_model import decide as model_decide
from tests.policy.support import default_engine, default_set
from tests.policy.table import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_default_rule_table(case: Case) -> None:
    decision = default_engine().decide(case.request)
    field = decision.fields[0]
    assert field.allowed is case.allowed
    assert case.policy in field.policy_ids
    assert decision.policy_version == default_set().version
    assert all(ref.reason for ref in field.policies)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reference_model_agrees_with_table(case: Case) -> None:
    (field,) = model_decide(case.request, default_set().taxonomy)
    assert field.allowed is case.allowed
    assert case.policy in field.policies
