"""Seal/open round trips (E12), what the client refuses to seal, and the
canonical encoding's own rules (idempotence, envelope identity).
Selective disclosure: test_envelope_disclosure.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from accord_client import crypto
from accord_client.envelope import PlainField, seal_envelope
from accord_client.envelope_errors import (
    DecryptionFailedError,
    EnvelopeMalformedError,
    InvalidKeyError,
)
from accord_client.envelope_format import (
    MAX_FIELDS,
    MAX_VALUE_BYTES,
    canonical_json,
    envelope_id,
)
from accord_client.strict_json import loads_strict
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.envelopes.verify import parse_envelope, verify_signature

from .support import CONSENT, PURPOSE, SUBJECT, Party, open_as, seal

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
    env = seal(
        alice,
        bob,
        tuple(PlainField(name=n, category="contact", value=v) for n, v in values.items()),
    )
    wire = json.dumps(env, ensure_ascii=False).encode("utf-8")
    assert open_as(bob, alice, wire) == values
    parsed = parse_envelope(wire)
    assert verify_signature(parsed, alice.verify_key)
    assert [f.name for f in parsed.fields] == sorted(values)


@BOUNDED
@given(values=FIELD_SETS)
def test_canonical_encoding_is_idempotent(alice: Party, bob: Party, values: dict[str, str]) -> None:
    env = seal(
        alice, bob, tuple(PlainField(name=n, category="needs", value=v) for n, v in values.items())
    )
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


def test_E12_largest_value_round_trips(alice: Party, bob: Party) -> None:
    # 4-byte characters up to the limit: the ciphertext is exactly MAX_CIPHERTEXT_BYTES.
    value = "\U0001f600" * (MAX_VALUE_BYTES // 4)
    env = seal(alice, bob, (PlainField(name="notes", category="case_summary", value=value),))
    assert len(parse_envelope(env).fields[0].ciphertext) == MAX_VALUE_BYTES // 4 * 4 + 40
    assert open_as(bob, alice, env) == {"notes": value}


def test_open_value_refuses_a_ciphertext_shorter_than_nonce_and_tag(bob: Party) -> None:
    sealed = crypto.seal_value(b"x", associated_data=b"ad", recipient_public_key=bob.enc_public)
    for cut in (0, 23, 39):
        with pytest.raises(DecryptionFailedError):
            crypto.open_value(
                ciphertext=sealed.ciphertext[:cut],
                sealed_key=sealed.sealed_key,
                commitment=sealed.key_commitment,
                associated_data=b"ad",
                recipient_private_key=bob.enc_private,
            )
    assert (
        crypto.open_value(
            ciphertext=sealed.ciphertext,
            sealed_key=sealed.sealed_key,
            commitment=sealed.key_commitment,
            associated_data=b"ad",
            recipient_private_key=bob.enc_private,
        )
        == b"x"
    )


def test_client_refuses_to_seal_what_the_server_would_refuse(alice: Party, bob: Party) -> None:
    base: dict[str, Any] = {
        "sender_org": alice.org,
        "sender_signing_key": alice.seed,
        "recipient_org": bob.org,
        "recipient_encryption_key": bob.enc_public,
        "subject_id": SUBJECT,
        "purpose": PURPOSE,
        "consent_id": CONSENT,
    }
    with pytest.raises(EnvelopeMalformedError) as info:
        seal_envelope(
            [PlainField(name="phone", category="contact", value="x")],
            **{**base, "purpose": "Bad Purpose"},
        )
    assert [p.path for p in info.value.problems] == ["envelope.context.purpose"]
    with pytest.raises(EnvelopeMalformedError) as info:
        seal_envelope(
            [
                PlainField(name="phone", category="contact", value="x"),
                PlainField(name="phone", category="contact", value="y"),
            ],
            **base,
        )
    assert [p.code for p in info.value.problems] == ["duplicate_name"]
    with pytest.raises(EnvelopeMalformedError) as info:
        seal_envelope(
            [PlainField(name="phone", category="contact", value="x" * (MAX_VALUE_BYTES + 1))],
            **base,
        )
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("envelope.fields[0].value", "limit")
    ]
    with pytest.raises(EnvelopeMalformedError) as info:
        seal_envelope([PlainField(name="phone", category="contact", value="CANARY\ud800")], **base)
    assert "CANARY" not in str(info.value)
    with pytest.raises(EnvelopeMalformedError):
        seal_envelope(
            [
                PlainField(name=f"f{i}", category="contact", value="x")
                for i in range(MAX_FIELDS + 1)
            ],
            **base,
        )
    with pytest.raises(EnvelopeMalformedError):
        seal_envelope([], **base)
    assert seal_envelope(
        [PlainField(name="phone", category="contact", value="x" * MAX_VALUE_BYTES)], **base
    )


@pytest.mark.parametrize("key", [b"\0" * 32, b"\1" + b"\0" * 31, b"\0" * 31])
def test_E10_client_refuses_to_seal_to_a_low_order_or_short_key(
    alice: Party, bob: Party, key: bytes
) -> None:
    with pytest.raises(InvalidKeyError):
        seal_envelope(
            [PlainField(name="phone", category="contact", value="x")],
            sender_org=alice.org,
            sender_signing_key=alice.seed,
            recipient_org=bob.org,
            recipient_encryption_key=key,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"purpose": "CANARY\ud800"}, "envelope.context.purpose"),
        ({"subject_id": None}, "envelope.context.subject_id"),
        ({"recipient_org": 7}, "envelope.recipient_org"),
    ],
)
def test_bad_header_input_is_a_typed_error_before_any_sealing(
    alice: Party, bob: Party, override: dict[str, Any], path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord_client import envelope as client_envelope

    def must_not_seal(*args: object, **kwargs: object) -> None:
        raise AssertionError("a value was sealed before the header was checked")

    monkeypatch.setattr(client_envelope, "seal_value", must_not_seal)
    kwargs: dict[str, Any] = {
        "sender_org": alice.org,
        "sender_signing_key": alice.seed,
        "recipient_org": bob.org,
        "recipient_encryption_key": bob.enc_public,
        "subject_id": SUBJECT,
        "purpose": PURPOSE,
        "consent_id": CONSENT,
    }
    with pytest.raises(EnvelopeMalformedError) as info:
        seal_envelope(
            [PlainField(name="phone", category="contact", value="x")], **kwargs | override
        )
    assert [p.path for p in info.value.problems] == [path]
    assert "CANARY" not in str(info.value)
