"""SECURITY-TESTS E01, E03, E11: tampered envelopes are refused by the server
where it can see the tampering, and by the client's open() before any value is
returned. Each tamper is also tried re-signed (a malicious sender, or a bypassed
signature check) so the AEAD and key-commitment layers are tested on their own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import nacl.bindings
import pytest
from accord_client import crypto
from accord_client import envelope as client_envelope
from accord_client.envelope_errors import (
    CommitmentMismatchError,
    DecryptionFailedError,
    EnvelopeError,
    EnvelopeMalformedError,
    SenderMismatchError,
    SignatureInvalidError,
    WrongRecipientError,
)
from accord_client.envelope_format import b64encode, field_ad

from service.envelopes.verify import (
    EnvelopeRejectedError,
    parse_envelope,
    verify_signature,
    verify_submission,
)

from .support import (
    CONSENT,
    PURPOSE,
    SUBJECT,
    Party,
    flip_bit,
    header_of,
    open_as,
    resign,
    seal,
)

Tamper = Callable[[dict[str, Any], "Ctx"], None]


class Ctx:
    def __init__(self, alice: Party, bob: Party, carol: Party) -> None:
        self.alice, self.bob, self.carol = alice, bob, carol


@pytest.fixture
def decrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every field decryption attempt the client makes."""
    calls: list[str] = []
    real = crypto.open_value

    def spy(**kwargs: Any) -> bytes:
        calls.append("open")
        return real(**kwargs)

    monkeypatch.setattr(client_envelope, "open_value", spy)
    return calls


def _flip_ciphertext(env: dict[str, Any], ctx: Ctx) -> None:
    env["fields"][0]["ciphertext"] = flip_bit(env["fields"][0]["ciphertext"], 30)


def _swap_ciphertexts(env: dict[str, Any], ctx: Ctx) -> None:
    a, b = env["fields"][0], env["fields"][1]
    a["ciphertext"], b["ciphertext"] = b["ciphertext"], a["ciphertext"]


def _swap_whole_fields_keep_names(env: dict[str, Any], ctx: Ctx) -> None:
    a, b = env["fields"][0], env["fields"][1]
    for key in ("ciphertext", "sealed_key", "key_commitment"):
        a[key], b[key] = b[key], a[key]


def _change_category(env: dict[str, Any], ctx: Ctx) -> None:
    env["fields"][2]["category"] = "needs"  # safety_plan relabelled as a lower tier


def _retarget_recipient_org(env: dict[str, Any], ctx: Ctx) -> None:
    env["recipient_org"] = ctx.carol.org


def _retarget_recipient_key_id(env: dict[str, Any], ctx: Ctx) -> None:
    env["recipient_key_id"] = ctx.carol.enc_key_id


def _remove_field(env: dict[str, Any], ctx: Ctx) -> None:
    del env["fields"][1]


def _change_purpose(env: dict[str, Any], ctx: Ctx) -> None:
    env["context"]["purpose"] = "prosecution"


def _change_subject(env: dict[str, Any], ctx: Ctx) -> None:
    env["context"]["subject_id"] = "00000000-0000-4000-8000-000000000000"


def _foreign_signature(env: dict[str, Any], ctx: Ctx) -> None:
    env["signature"] = resign(env, ctx.carol)["signature"]


def _splice_from_other_envelope(env: dict[str, Any], ctx: Ctx) -> None:
    other = seal(ctx.alice, ctx.bob, subject="11111111-2222-4333-8444-555555555555")
    env["fields"][1] = copy.deepcopy(other["fields"][1])  # same name, other subject


TAMPERS: dict[str, Tamper] = {
    "flipped_ciphertext_bit": _flip_ciphertext,
    "ciphertexts_swapped_between_fields": _swap_ciphertexts,
    "whole_fields_swapped_names_kept": _swap_whole_fields_keep_names,
    "changed_category_label": _change_category,
    "retargeted_recipient_org": _retarget_recipient_org,
    "retargeted_recipient_key_id": _retarget_recipient_key_id,
    "removed_field": _remove_field,
    "changed_context_purpose": _change_purpose,
    "changed_context_subject": _change_subject,
    "foreign_signature": _foreign_signature,
    "field_spliced_from_other_envelope": _splice_from_other_envelope,
}

# Tampers that stay invisible to every layer once the real sender re-signs:
# removing a field is what a sender may legitimately do.
RESIGN_UNDETECTABLE = {"removed_field", "foreign_signature"}


@pytest.fixture
def ctx(alice: Party, bob: Party, carol: Party) -> Ctx:
    return Ctx(alice, bob, carol)


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_E01_tampered_envelope_rejected_by_server_signature_check(kind: str, ctx: Ctx) -> None:
    env = seal(ctx.alice, ctx.bob)
    assert verify_signature(parse_envelope(env), ctx.alice.verify_key)
    TAMPERS[kind](env, ctx)
    parsed = parse_envelope(env)  # structurally still fine: only the signature can tell
    assert not verify_signature(parsed, ctx.alice.verify_key)
    with pytest.raises(EnvelopeRejectedError) as info:
        verify_submission(
            parsed,
            sender_org=ctx.alice.org,
            sender_public_key=ctx.alice.verify_key,
            recipient_org=ctx.bob.org,
            recipient_key_id=ctx.bob.enc_key_id,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )
    assert info.value.status == 422
    assert "envelope.signature" in {e.path for e in info.value.errors}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_E01_tampered_envelope_open_raises_before_decrypting(
    kind: str, ctx: Ctx, decrypt_calls: list[str]
) -> None:
    env = seal(ctx.alice, ctx.bob)
    TAMPERS[kind](env, ctx)
    with pytest.raises(EnvelopeError) as info:
        open_as(ctx.bob, ctx.alice, env)
    assert isinstance(info.value, (SignatureInvalidError, WrongRecipientError))
    assert decrypt_calls == []  # the signature (or addressing) failed first
    assert "CANARY" not in str(info.value)


@pytest.mark.parametrize("kind", sorted(set(TAMPERS) - RESIGN_UNDETECTABLE))
def test_E01_tampered_and_resigned_envelope_still_fails_to_open(kind: str, ctx: Ctx) -> None:
    env = seal(ctx.alice, ctx.bob)
    TAMPERS[kind](env, ctx)
    env = resign(env, ctx.alice)
    with pytest.raises((DecryptionFailedError, WrongRecipientError)):
        open_as(ctx.bob, ctx.alice, env)


def test_E01_removed_field_resigned_is_a_new_envelope_that_opens(ctx: Ctx) -> None:
    # The control for the set above: re-signing by the real sender is authorship.
    env = seal(ctx.alice, ctx.bob)
    del env["fields"][1]
    env = resign(env, ctx.alice)
    assert set(open_as(ctx.bob, ctx.alice, env)) == {"full_name", "safety_notes"}


@pytest.mark.parametrize("how", ["missing", "empty", "zeros", "truncated"])
def test_E01_stripped_signature_rejected(how: str, ctx: Ctx) -> None:
    env = seal(ctx.alice, ctx.bob)
    if how == "missing":
        del env["signature"]
    elif how == "empty":
        env["signature"] = ""
    elif how == "zeros":
        env["signature"] = b64encode(b"\0" * 64)
    else:
        env["signature"] = b64encode(b"\1" * 63)
    if how == "zeros":
        assert not verify_signature(parse_envelope(env), ctx.alice.verify_key)
        with pytest.raises(SignatureInvalidError):
            open_as(ctx.bob, ctx.alice, env)
        return
    with pytest.raises(EnvelopeRejectedError) as info:
        parse_envelope(env)
    assert [e.path for e in info.value.errors] == ["envelope.signature"]
    with pytest.raises(EnvelopeMalformedError):
        open_as(ctx.bob, ctx.alice, env)


def test_E01_retargeted_envelope_does_not_open_for_the_new_recipient(ctx: Ctx) -> None:
    env = seal(ctx.alice, ctx.bob)
    env["recipient_org"], env["recipient_key_id"] = ctx.carol.org, ctx.carol.enc_key_id
    env = resign(env, ctx.alice)  # even the real sender's signature cannot re-address a sealed key
    with pytest.raises(DecryptionFailedError):
        open_as(ctx.carol, ctx.alice, env)


def test_E03_outsider_claims_to_be_sender_with_own_key(ctx: Ctx) -> None:
    # Carol knows Bob's public key, seals fields to him and claims to be Alice.
    forged = seal(ctx.carol, ctx.bob)
    forged["sender_org"] = ctx.alice.org
    forged = resign(forged, ctx.carol)
    parsed = parse_envelope(forged)
    assert not verify_signature(parsed, ctx.alice.verify_key)  # under Alice's registered key
    with pytest.raises(EnvelopeRejectedError) as info:  # Carol's token: sender must be Carol
        verify_submission(
            parsed,
            sender_org=ctx.carol.org,
            sender_public_key=ctx.carol.verify_key,
            recipient_org=ctx.bob.org,
            recipient_key_id=ctx.bob.enc_key_id,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )
    assert {e.path for e in info.value.errors} == {"envelope.sender_org"}
    # Bob's client looks up the key by sender_key_id: the directory says it is Carol's.
    with pytest.raises(SenderMismatchError):
        open_as(ctx.bob, ctx.carol, forged)
    # Or it trusts the claimed sender org and uses Alice's key: the key id disagrees.
    with pytest.raises(SenderMismatchError):
        open_as(ctx.bob, ctx.alice, forged)


def test_E03_own_org_but_another_orgs_key_id(ctx: Ctx) -> None:
    forged = seal(ctx.carol, ctx.bob)
    forged["sender_key_id"] = ctx.alice.keys.current_signing_key.key_id
    forged = resign(forged, ctx.carol)
    parsed = parse_envelope(forged)
    assert not verify_signature(parsed, ctx.alice.verify_key)
    assert not verify_signature(parsed, ctx.carol.verify_key)
    with pytest.raises(EnvelopeRejectedError) as info:
        verify_submission(
            parsed,
            sender_org=ctx.carol.org,
            sender_public_key=ctx.carol.verify_key,
            recipient_org=ctx.bob.org,
            recipient_key_id=ctx.bob.enc_key_id,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )
    assert {e.path for e in info.value.errors} == {"envelope.sender_key_id", "envelope.signature"}
    with pytest.raises(SenderMismatchError):  # directory: that key id belongs to Alice
        open_as(ctx.bob, ctx.alice, forged)


def _commitment_forgery(ctx: Ctx) -> dict[str, Any]:
    """Field 0 gets a ciphertext and sealed key under K' but K's commitment, re-signed."""
    env = seal(ctx.alice, ctx.bob)
    header = header_of(env)
    f = env["fields"][0]
    committed_key, other_key = b"\x11" * 32, b"\x22" * 32
    forged = crypto._seal_value_with(
        b"a different value",
        associated_data=field_ad(header, f["name"], f["category"]),
        data_key=other_key,
        nonce=b"\x33" * 24,
        sealed_key=nacl.bindings.crypto_box_seal(other_key, ctx.bob.enc_public),
    )
    f["ciphertext"] = b64encode(forged.ciphertext)
    f["sealed_key"] = b64encode(forged.sealed_key)
    f["key_commitment"] = b64encode(crypto.key_commitment(committed_key))
    return resign(env, ctx.alice)


def test_E11_unsealed_key_not_matching_commitment_rejected(ctx: Ctx) -> None:
    env = _commitment_forgery(ctx)
    assert verify_signature(parse_envelope(env), ctx.alice.verify_key)  # the signature is fine
    with pytest.raises(CommitmentMismatchError):
        open_as(ctx.bob, ctx.alice, env)


def test_E11_commitment_is_checked_before_the_aead_runs(ctx: Ctx) -> None:
    # Control: with the commitment matching K', the very same ciphertext opens,
    # so only the commitment check stopped the forgery above.
    env = _commitment_forgery(ctx)
    env["fields"][0]["key_commitment"] = b64encode(crypto.key_commitment(b"\x22" * 32))
    env = resign(env, ctx.alice)
    assert open_as(ctx.bob, ctx.alice, env)["full_name"] == "a different value"


def test_wrong_recipient_org_or_key_refused(ctx: Ctx) -> None:
    env = seal(ctx.alice, ctx.bob)
    with pytest.raises(WrongRecipientError):
        client_envelope.open_envelope(
            env,
            recipient_private_key=ctx.carol.enc_private,
            sender_signing_key=ctx.alice.verify_key,
            expected_sender_org=ctx.alice.org,
            expected_recipient_org=ctx.bob.org,
        )
    with pytest.raises(WrongRecipientError):
        client_envelope.open_envelope(
            env,
            recipient_private_key=ctx.bob.enc_private,
            sender_signing_key=ctx.alice.verify_key,
            expected_sender_org=ctx.alice.org,
            expected_recipient_org=ctx.carol.org,
        )


def test_expected_context_mismatch_refused(ctx: Ctx) -> None:
    from accord_client.envelope_errors import ContextMismatchError

    env = seal(ctx.alice, ctx.bob)
    kwargs: dict[str, Any] = {
        "recipient_private_key": ctx.bob.enc_private,
        "sender_signing_key": ctx.alice.verify_key,
        "expected_sender_org": ctx.alice.org,
        "expected_recipient_org": ctx.bob.org,
    }
    assert client_envelope.open_envelope(env, expected_context={"subject_id": SUBJECT}, **kwargs)
    with pytest.raises(ContextMismatchError):
        client_envelope.open_envelope(env, expected_context={"purpose": "prosecution"}, **kwargs)
    with pytest.raises(ContextMismatchError):
        client_envelope.open_envelope(env, expected_context={"consent_id": None}, **kwargs)


def test_verify_submission_names_every_mismatch(ctx: Ctx) -> None:
    parsed = parse_envelope(seal(ctx.alice, ctx.bob))
    with pytest.raises(EnvelopeRejectedError) as info:
        verify_submission(
            parsed,
            sender_org=ctx.alice.org,
            sender_public_key=ctx.alice.verify_key,
            recipient_org=ctx.carol.org,
            recipient_key_id=ctx.carol.enc_key_id,
            subject_id="00000000-0000-4000-8000-000000000000",
            purpose="prosecution",
            consent_id=None,
            request_id="00000000-0000-4000-8000-000000000001",
        )
    assert {e.path for e in info.value.errors} == {
        "envelope.recipient_org",
        "envelope.recipient_key_id",
        "envelope.context.subject_id",
        "envelope.context.purpose",
        "envelope.context.consent_id",
        "envelope.context.request_id",
    }
    body = info.value.problem()
    assert body["status"] == 422
    assert all(e["code"] == "mismatch" for e in body["errors"])


def test_verify_submission_accepts_the_genuine_envelope(ctx: Ctx) -> None:
    parsed = parse_envelope(seal(ctx.alice, ctx.bob))
    verify_submission(
        parsed,
        sender_org=ctx.alice.org,
        sender_public_key=ctx.alice.verify_key,
        recipient_org=ctx.bob.org,
        recipient_key_id=ctx.bob.enc_key_id,
        subject_id=SUBJECT,
        purpose=PURPOSE,
        consent_id=CONSENT,
    )
    assert verify_signature(parsed, ctx.alice.verify_key)
