"""Seal/open round trips (E12), selective disclosure at delivery, and the
canonical encoding's own rules (idempotence, envelope identity)."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from accord_client.envelope import PlainField
from accord_client.envelope_errors import (
    EnvelopeError,
    EnvelopeMalformedError,
    SignatureInvalidError,
)
from accord_client.envelope_format import b64encode, canonical_json, envelope_id, sha256
from accord_client.strict_json import loads_strict
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.envelopes.format import WithheldField, build_delivery
from service.envelopes.verify import parse_envelope, verify_signature

from .support import DEFAULT_FIELDS, Party, open_as, open_delivery_as, seal

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
FIELD_SETS = st.dictionaries(NAMES, VALUES, min_size=1, max_size=8)
BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@BOUNDED
@given(values=FIELD_SETS)
@example(
    values={"nul": "\x00", "astral": "😀𝄞\U0010fffd", "empty": "", "mixed": "a\x00b\nc\u2028é"}
)
def test_E12_seal_then_open_round_trips_any_unicode(
    alice: Party, bob: Party, values: dict[str, str]
) -> None:
    env = seal(alice, bob, tuple(PlainField(n, "contact", v) for n, v in values.items()))
    wire = json.dumps(env, ensure_ascii=False).encode("utf-8")
    assert open_as(bob, alice, wire) == values
    parsed = parse_envelope(wire)
    assert verify_signature(parsed, alice.verify_key)
    assert [f.name for f in parsed.fields] == sorted(values)


@BOUNDED
@given(values=FIELD_SETS)
def test_canonical_encoding_is_idempotent(alice: Party, bob: Party, values: dict[str, str]) -> None:
    env = seal(alice, bob, tuple(PlainField(n, "needs", v) for n, v in values.items()))
    first = canonical_json(parse_envelope(env).to_json())
    reparsed = parse_envelope(first)
    assert canonical_json(reparsed.to_json()) == first
    assert envelope_id(reparsed) == envelope_id(parse_envelope(json.dumps(env, indent=2)))
    assert loads_strict(first) == env


def test_envelope_id_differs_per_envelope_and_is_stable(alice: Party, bob: Party) -> None:
    one, two = seal(alice, bob), seal(alice, bob)  # same values, fresh keys and nonces
    ids = {envelope_id(parse_envelope(one)), envelope_id(parse_envelope(two))}
    assert len(ids) == 2
    assert envelope_id(parse_envelope(copy.deepcopy(one))) == envelope_id(parse_envelope(one))
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)


def _delivery(env: dict[str, Any], withhold: set[str]) -> dict[str, Any]:
    parsed = parse_envelope(env)
    return build_delivery(
        header=parsed.header,
        signature=parsed.signature,
        released=[f for f in parsed.fields if f.name not in withhold],
        withheld=[
            WithheldField(f.manifest_entry(), ("consent_missing",), ("default.consent",))
            for f in parsed.fields
            if f.name in withhold
        ],
        disclosure_seq=7,
    )


FOUR = (*DEFAULT_FIELDS, PlainField("languages", "language", "es, pt"))


@pytest.fixture(scope="module")
def four_field_envelope(alice: Party, bob: Party) -> dict[str, Any]:
    return seal(alice, bob, FOUR)


def test_selective_disclosure_every_subset_verifies(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any]
) -> None:
    names = [f.name for f in FOUR]
    expected = {f.name: f.value for f in FOUR}
    for size in range(len(names) + 1):
        for withhold in itertools.combinations(names, size):
            delivery = _delivery(four_field_envelope, set(withhold))
            opened = open_delivery_as(bob, alice, json.dumps(delivery).encode())
            assert opened == {n: v for n, v in expected.items() if n not in withhold}


def test_selective_disclosure_withheld_digest_changed_fails(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any]
) -> None:
    delivery = _delivery(four_field_envelope, {"phone", "safety_notes"})
    # Consistently forged entry (digest recomputed from the changed hash): signature fails.
    entry = delivery["withheld"][0]
    entry["ciphertext_sha256"] = b64encode(sha256(b"another ciphertext"))
    entry["digest"] = b64encode(
        sha256(
            b"accord/envelope/v1/field-digest\n"
            + canonical_json(
                {
                    k: entry[k]
                    for k in (
                        "name",
                        "category",
                        "ciphertext_sha256",
                        "sealed_key_sha256",
                        "key_commitment",
                    )
                }
            )
        )
    )
    with pytest.raises(SignatureInvalidError):
        open_delivery_as(bob, alice, delivery)
    # Only the digest changed: inconsistent with its own entry.
    delivery = _delivery(four_field_envelope, {"phone"})
    delivery["withheld"][0]["digest"] = b64encode(sha256(b"x"))
    with pytest.raises(EnvelopeMalformedError) as info:
        open_delivery_as(bob, alice, delivery)
    assert [p.code for p in info.value.problems] == ["digest_mismatch"]


@pytest.mark.parametrize(
    "tamper",
    [
        "drop_withheld_entry",
        "drop_released_field",
        "relabel_withheld_category",
        "rename_withheld",
        "withheld_also_released",
        "flip_released_ciphertext",
        "released_out_of_order",
        "sender_key_id_mismatch",
    ],
)
def test_selective_disclosure_tampered_delivery_fails(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any], tamper: str
) -> None:
    delivery = _delivery(four_field_envelope, {"languages", "safety_notes"})
    released, withheld = delivery["released"], delivery["withheld"]
    if tamper == "drop_withheld_entry":
        withheld.pop()
    elif tamper == "drop_released_field":
        released.pop()
    elif tamper == "relabel_withheld_category":
        withheld[0]["category"] = "needs"
        withheld[0]["digest"] = _recompute(withheld[0])
    elif tamper == "rename_withheld":
        withheld[0]["name"] = "languagez"
        withheld[0]["digest"] = _recompute(withheld[0])
    elif tamper == "withheld_also_released":
        withheld.append(
            {**withheld[0], "name": released[0]["name"], "category": released[0]["category"]}
        )
        withheld[-1]["digest"] = _recompute(withheld[-1])
    elif tamper == "flip_released_ciphertext":
        raw = bytearray(json.dumps(released[0]["ciphertext"]).encode())
        released[0]["ciphertext"] = b64encode(sha256(bytes(raw)) * 2)
    elif tamper == "released_out_of_order":
        released.reverse()
    else:
        delivery["sender_key_id"] = bob.keys.current_signing_key.key_id
    with pytest.raises(EnvelopeError):
        open_delivery_as(bob, alice, delivery)


def _recompute(entry: dict[str, Any]) -> str:
    keys = ("name", "category", "ciphertext_sha256", "sealed_key_sha256", "key_commitment")
    return b64encode(
        sha256(b"accord/envelope/v1/field-digest\n" + canonical_json({k: entry[k] for k in keys}))
    )


def test_delivery_extra_unsigned_metadata_is_ignored(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any]
) -> None:
    delivery = _delivery(four_field_envelope, {"phone"})
    delivery["referral_id"] = "anything"
    delivery["withheld"][0]["policy_set"] = "sha256:abc"
    assert "phone" not in open_delivery_as(bob, alice, delivery)


def test_build_delivery_refuses_a_field_both_released_and_withheld(
    four_field_envelope: dict[str, Any],
) -> None:
    parsed = parse_envelope(four_field_envelope)
    with pytest.raises(ValueError, match="once"):
        build_delivery(
            header=parsed.header,
            signature=parsed.signature,
            released=list(parsed.fields),
            withheld=[WithheldField(parsed.fields[0].manifest_entry(), (), ())],
            disclosure_seq=1,
        )
