"""Selective disclosure (API.md "Envelopes", docs/envelope.md "Deliveries"): the
service may withhold any fields at delivery, and the recipient still verifies
the sender's signature over what remains plus the digests of what was withheld;
any change to a signed member of a delivery is detected before a value is returned.
SECURITY-TESTS E01 at delivery time."""

from __future__ import annotations

import base64
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
from accord_client.envelope_format import b64encode, canonical_json, sha256
from accord_client.envelope_parse import CONTEXT_KEYS, FIELD_KEYS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.envelopes.format import WithheldField, build_delivery
from service.envelopes.verify import parse_envelope

from .support import DEFAULT_FIELDS, Party, open_delivery_as, open_delivery_full, seal

BOUNDED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENTRY_KEYS = ("name", "category", "ciphertext_sha256", "sealed_key_sha256", "key_commitment")
HEADER_TEXT_KEYS = ("sender_org", "sender_key_id", "recipient_org", "recipient_key_id")


def _delivery(env: dict[str, Any], withhold: set[str]) -> dict[str, Any]:
    parsed = parse_envelope(env)
    return build_delivery(
        header=parsed.header,
        signature=parsed.signature,
        released=[f for f in parsed.fields if f.name not in withhold],
        withheld=[
            WithheldField(
                entry=f.manifest_entry(),
                reasons=("consent_missing",),
                policies=("default.consent",),
            )
            for f in parsed.fields
            if f.name in withhold
        ],
        disclosure_seq=7,
    )


FOUR = (*DEFAULT_FIELDS, PlainField(name="languages", category="language", value="es, pt"))


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
            withheld=[
                WithheldField(entry=parsed.fields[0].manifest_entry(), reasons=(), policies=())
            ],
            disclosure_seq=1,
        )


def test_withheld_ciphertext_and_sealed_key_never_leave_in_the_delivery(
    four_field_envelope: dict[str, Any],
) -> None:
    withhold = {"phone", "safety_notes"}
    text = json.dumps(_delivery(four_field_envelope, withhold))
    for f in four_field_envelope["fields"]:
        for key in ("ciphertext", "sealed_key"):
            assert (f[key] in text) is (f["name"] not in withhold)


def test_open_reports_the_verified_header_and_withheld_entries(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any]
) -> None:
    opened = open_delivery_full(bob, alice, _delivery(four_field_envelope, {"phone"}))
    assert opened.header == parse_envelope(four_field_envelope).header
    assert [(e.name, e.category) for e in opened.withheld] == [("phone", "contact")]
    assert "phone" not in opened.values
    assert "CANARY" not in repr(opened)  # values stay out of repr (and so out of logs)


# --- properties -------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
CATEGORIES = st.sampled_from(["identity", "contact", "location", "needs", "health"])
FIELD_SETS = st.dictionaries(
    NAMES, st.tuples(CATEGORIES, st.text(max_size=60)), min_size=1, max_size=6
)


@BOUNDED
@given(fields=FIELD_SETS, data=st.data())
def test_withholding_any_subset_of_any_field_set_still_verifies(
    alice: Party, bob: Party, fields: dict[str, tuple[str, str]], data: st.DataObject
) -> None:
    plain = tuple(PlainField(name=n, category=c, value=v) for n, (c, v) in fields.items())
    withhold = data.draw(st.sets(st.sampled_from(sorted(fields))), label="withhold")
    delivery = _delivery(seal(alice, bob, plain), withhold)
    opened = open_delivery_full(bob, alice, json.dumps(delivery).encode())
    assert opened.values == {n: v for n, (_, v) in fields.items() if n not in withhold}
    assert [(e.name, e.category) for e in opened.withheld] == [
        (n, fields[n][0]) for n in sorted(withhold)
    ]


def _signed_paths(delivery: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every member of a delivery that the sender's signature covers."""
    paths: list[tuple[Any, ...]] = [("envelope_header", "version"), ("signature",)]
    paths += [("envelope_header", k) for k in HEADER_TEXT_KEYS]
    paths += [("envelope_header", "context", k) for k in CONTEXT_KEYS]
    paths += [("released", i, k) for i in range(len(delivery["released"])) for k in FIELD_KEYS]
    paths += [("withheld", i, k) for i in range(len(delivery["withheld"])) for k in ENTRY_KEYS]
    return paths


def _mutated(value: Any, data: st.DataObject) -> Any:
    """A different value of the same shape, so structure checks alone cannot catch it."""
    if value is None:
        return "00000000-0000-4000-8000-000000000000"
    if isinstance(value, int):
        return value + 1
    if len(value) in (32, 36) and all(ch in "0123456789abcdef-" for ch in value):
        positions = [i for i, ch in enumerate(value) if ch != "-"]
        i = data.draw(st.sampled_from(positions), label="hex position")
        return value[:i] + ("0" if value[i] != "0" else "1") + value[i + 1 :]
    if value.endswith("=") or (len(value) % 4 == 0 and len(value) >= 44):
        raw = bytearray(base64.b64decode(value))
        bit = data.draw(st.integers(0, len(raw) * 8 - 1), label="bit")
        raw[bit // 8] ^= 1 << (bit % 8)
        return b64encode(bytes(raw))
    return data.draw(
        st.sampled_from(["contact", "identity", "zz", value + "x"]).filter(
            lambda other: other != value
        ),
        label="name",
    )


@BOUNDED
@given(data=st.data())
def test_any_change_to_a_signed_member_of_a_delivery_is_detected(
    alice: Party, bob: Party, four_field_envelope: dict[str, Any], data: st.DataObject
) -> None:
    names = [f["name"] for f in four_field_envelope["fields"]]
    withhold = data.draw(st.sets(st.sampled_from(names)), label="withhold")
    delivery = _delivery(four_field_envelope, withhold)
    assert open_delivery_as(bob, alice, delivery) is not None  # control: untouched, it opens
    path = data.draw(st.sampled_from(_signed_paths(delivery)), label="path")
    parent: Any = delivery
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = _mutated(parent[path[-1]], data)
    if path[0] == "withheld" and data.draw(st.booleans(), label="recompute digest"):
        parent["digest"] = _recompute(parent)  # consistent entry: only the signature can tell
    if path == ("envelope_header", "sender_key_id"):
        delivery["sender_key_id"] = parent["sender_key_id"]
    with pytest.raises(EnvelopeError):
        open_delivery_as(bob, alice, delivery)
