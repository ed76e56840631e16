"""Loading the policy set: invalid sets stop with the file named (H09), the
version hash follows the files (C16), and evaluation errors fail closed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.policy.engine import CedarPolicyEngine
from service.policy.errors import PolicySetError
from service.policy.loader import build_policy_set, load_policy_set, policy_set_version
from service.policy.setup import load_policies
from service.settings import Settings
from tests.policy.support import POLICY_DIR, default_set, policy_files, request


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    target.mkdir()
    for name, text in policy_files().items():
        (target / name).write_text(text, encoding="utf-8")
    return target


def test_H09_shipped_policy_set_loads_through_policy_setup() -> None:
    engine, vocabulary = load_policies(Settings(policy_dir=POLICY_DIR))
    assert engine.version == default_set().version
    assert "counseling_notes" in vocabulary.categories


@pytest.mark.parametrize(
    ("file_name", "text", "problem"),
    [
        ("research.cedar", "forbid (principal action, resource);", "syntax error"),
        (
            "research.cedar",
            '@id("x")\n@reason("r")\nforbid (principal, action, resource)'
            " when { principal.no_such_attribute };",
            "schema",
        ),
        ("research.cedar", "forbid (principal, action, resource);", "@id"),
        ("research.cedar", '@id("x")\nforbid (principal, action, resource);', "@reason"),
        (
            "research.cedar",
            '@id("agreement-flow-required")\n@reason("r")\nforbid (principal, action, resource);',
            "also used in",
        ),
        (
            "research.cedar",
            '@id("t")\n@reason("r")\npermit (principal == ?principal, action, resource);',
            "templates",
        ),
        ("schema.cedarschema", "entity Release = {", "error parsing schema"),
        (
            "categories.toml",
            "[categories.x]\ntier = 9\n[purposes]\na='b'\n[legal_bases]\nc='d'",
            "tier",
        ),
        (
            "categories.toml",
            "[categories.x]\ntier = 1\nexplict = true\n[purposes]\na='b'\n[legal_bases]\nc='d'",
            "unknown keys",
        ),
    ],
)
def test_H09_invalid_policy_set_stops_loading_naming_the_file(
    tmp_path: Path, file_name: str, text: str, problem: str
) -> None:
    directory = _copy_policies(tmp_path)
    (directory / file_name).write_text(text, encoding="utf-8")
    with pytest.raises(PolicySetError) as raised:
        load_policies(Settings(policy_dir=directory))
    assert raised.value.source.endswith(file_name)
    assert file_name in str(raised.value)
    assert problem in str(raised.value)


@pytest.mark.parametrize("missing", ["schema.cedarschema", "categories.toml"])
def test_H09_missing_file_stops_loading(tmp_path: Path, missing: str) -> None:
    directory = _copy_policies(tmp_path)
    (directory / missing).unlink()
    with pytest.raises(PolicySetError, match=missing):
        load_policy_set(directory)


def test_H09_directory_without_policy_files_stops_loading(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    for path in directory.glob("*.cedar"):
        path.unlink()
    with pytest.raises(PolicySetError, match=r"no \*\.cedar"):
        load_policy_set(directory)


def test_C16_version_changes_when_any_file_changes(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    before = load_policy_set(directory).version
    assert before == default_set().version
    for name in policy_files():
        path = directory / name
        original = path.read_text(encoding="utf-8")
        path.write_text(original + "\n", encoding="utf-8")  # valid in all three formats
        assert load_policy_set(directory).version != before, name
        path.write_text(original, encoding="utf-8")
    assert load_policy_set(directory).version == before


def test_C16_version_ignores_files_outside_the_set(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    (directory / "README.md").write_text("notes", encoding="utf-8")
    (directory / "basis.cedar.bak").write_text("junk", encoding="utf-8")
    assert load_policy_set(directory).version == default_set().version


def test_version_is_length_prefixed_so_content_cannot_shift_between_files() -> None:
    assert policy_set_version({"a": "bc", "d": ""}) != policy_set_version({"a": "b", "cd": ""})
    assert policy_set_version({"a": "1", "b": "2"}) == policy_set_version({"b": "2", "a": "1"})


def test_decisions_name_the_version_of_the_set_that_decided() -> None:
    files = dict(policy_files())
    files["research.cedar"] += "\n// a comment changes the version\n"
    changed = build_policy_set(files)
    decision = CedarPolicyEngine(changed).decide(request())
    assert decision.policy_version == changed.version != default_set().version


def test_evaluation_error_in_a_forbid_denies_the_field() -> None:
    # Validates against the schema but overflows at run time: Cedar then skips the
    # forbid, which would fail open. The engine must deny and name the policy.
    broken = (
        '@id("broken-forbid")\n@reason("deliberately broken")\n'
        "forbid (principal, action, resource) when { principal.now * 1000000000000 > 0 };"
    )
    files = dict(policy_files(), **{"broken.cedar": broken})
    engine = CedarPolicyEngine(build_policy_set(files), validate_requests=True)
    field = engine.decide(request()).fields[0]
    assert not field.allowed
    assert field.policy_ids == ("broken-forbid",)
    assert "could not be evaluated" in field.reasons[0]


def test_obligations_come_with_allowed_fields() -> None:
    engine = CedarPolicyEngine(default_set())
    substance = engine.decide(request(categories=("substance_use",))).fields[0]
    assert substance.allowed
    assert set(substance.obligations) == {"attach_consent", "redisclosure_notice"}
    emergency = engine.decide(
        request(
            purpose="emergency_contact",
            basis="emergency",
            with_consent=False,
            roles=frozenset({"supervisor"}),
            justified=True,
        )
    ).fields[0]
    assert set(emergency.obligations) == {"flag_for_review", "notify_survivor"}


def test_release_permit_holds_only_allowed_fields() -> None:
    req = request(categories=("contact", "immigration_status"), consent_categories={"*"})
    decision = CedarPolicyEngine(default_set()).decide(req)
    permit = decision.permit()
    assert permit.field_names == {"contact_field"}
    assert permit.policy_version == decision.policy_version
    with pytest.raises(TypeError):
        dataclasses.replace(permit, _issued_by=object())


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CedarPolicyEngine(default_set()).decide(
            dataclasses.replace(request(), at=request().at.replace(tzinfo=None))
        )
