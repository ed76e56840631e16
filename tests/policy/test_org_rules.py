"""An organization's own rules: forbid only (422 otherwise), scoped to the
decisions where the organization is sender, holder or recipient (C18)."""

from __future__ import annotations

import uuid

import pytest

from service.policy.errors import OrgRulesRejectedError
from service.policy.loader import MAX_NESTING, nesting_depth
from service.sectors import Sector
from tests.policy.support import ORGS, VSP, default_engine, request

FORBID_CONTACT = """
@id("no-contact-to-shelters")
@reason("Our policy: contact details go to shelters by phone only.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "contact" && principal.recipient_sector == "shelter" };
"""


def _rules(org_id: uuid.UUID, text: str = FORBID_CONTACT, version: int = 1):  # type: ignore[no-untyped-def]
    return default_engine().compile_org_rules(org_id=org_id, version=version, cedar_text=text)


def test_C18_org_forbid_overrides_a_permit_and_is_named() -> None:
    req = request()
    assert default_engine().decide(req).fields[0].allowed
    decision = default_engine().decide(req, org_rules=[_rules(VSP.id)])
    field = decision.fields[0]
    assert not field.allowed
    assert field.policy_ids == (f"org/{VSP.id}/no-contact-to-shelters",)
    assert field.policies[0].source == f"org/{VSP.id}/v1"
    assert [(r.org_id, r.version) for r in decision.org_rules] == [(VSP.id, 1)]


def test_recipient_org_rules_apply() -> None:
    decision = default_engine().decide(request(), org_rules=[_rules(ORGS[Sector.shelter].id)])
    assert not decision.fields[0].allowed


def test_rules_of_an_uninvolved_org_do_not_apply() -> None:
    decision = default_engine().decide(request(), org_rules=[_rules(ORGS[Sector.healthcare].id)])
    assert decision.fields[0].allowed
    assert decision.org_rules == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('@id("p")\n@reason("r")\npermit (principal, action, resource);', "only forbid"),
        (
            FORBID_CONTACT + '\n@id("q")\n@reason("r")\npermit (principal, action, resource);',
            "only forbid",
        ),
        ("forbid (principal, action, resource);", "@id"),
        (
            '@id("x")\n@reason("r")\nforbid (principal, action, resource) when { principal.nope };',
            "schema",
        ),
        ("forbid (principal action resource);", "syntax error"),
        (
            '@id("t")\n@reason("r")\nforbid (principal == ?principal, action, resource);',
            "templates",
        ),
    ],
)
def test_org_rules_that_could_permit_or_do_not_validate_are_rejected(text: str, why: str) -> None:
    with pytest.raises(OrgRulesRejectedError) as raised:
        _rules(VSP.id, text)
    assert raised.value.status == 422
    assert any(why in item.message for item in raised.value.errors)


def test_empty_org_rules_are_accepted_and_change_nothing() -> None:
    rules = _rules(VSP.id, "")
    assert default_engine().decide(request(), org_rules=[rules]).fields[0].allowed


def test_org_rule_reading_field_names_decides_field_by_field() -> None:
    text = (
        '@id("no-passport")\n@reason("Passport numbers stay here.")\n'
        'forbid (principal, action, resource) when { context.field == "passport" };'
    )
    req = request(categories=("identity",))
    req = req.with_fields([*req.fields, type(req.fields[0])("passport", "identity")])
    decision = default_engine().decide(req, org_rules=[_rules(VSP.id, text)])
    assert [f.allowed for f in decision.fields] == [True, False]


def test_nesting_depth_counts_brackets_outside_strings_and_comments() -> None:
    assert nesting_depth("") == 0
    assert nesting_depth("forbid (principal, action, resource) when { [1, [2]] };") == 3
    assert nesting_depth('when { "(((((" == "[[[" } // ((((((((\n(x)') == 1
    assert nesting_depth(r'"a \" ((((" (y)') == 1  # an escaped quote does not end the string
    assert nesting_depth(")))(") == 1  # stray closers never go below zero


def test_rules_nested_to_the_limit_are_accepted_one_deeper_refused() -> None:
    def rule(depth: int) -> str:
        return (
            '@id("deep")\n@reason("r")\nforbid (principal, action, resource) when { '
            + "(" * (depth - 1)
            + 'resource.name == "contact"'
            + ")" * (depth - 1)
            + " };"
        )

    assert nesting_depth(rule(MAX_NESTING)) == MAX_NESTING
    assert _rules(VSP.id, rule(MAX_NESTING)).est  # accepted, and it applies:
    decision = default_engine().decide(request(), org_rules=[_rules(VSP.id, rule(MAX_NESTING))])
    assert not decision.fields[0].allowed
    with pytest.raises(OrgRulesRejectedError) as raised:
        _rules(VSP.id, rule(MAX_NESTING + 1))
    assert any(f"at most {MAX_NESTING}" in item.message for item in raised.value.errors)
