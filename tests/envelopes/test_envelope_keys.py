"""Keys and randomness of the envelope format: SECURITY-TESTS E05 (rotation),
E10 (weak keys, client side), E12 (client hygiene) and E17 (key and domain
separation), and the organization's passphrase-protected key file."""

from __future__ import annotations

import dataclasses
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest
from accord_client import crypto, envelope_format, keys, receipts
from accord_client.checkpoint import CheckpointError, parse_checkpoint
from accord_client.envelope import PlainField, open_envelope, seal_envelope
from accord_client.envelope_errors import InvalidKeyError, WrongRecipientError
from accord_client.envelope_format import b64encode

from service.envelopes.verify import (
    EnvelopeRejectedError,
    parse_envelope,
    verify_signature,
    verify_submission,
)

from .support import CONSENT, PURPOSE, SUBJECT, Party, header_of, new_party, open_as, seal

FIELD_FOR_RANDOMNESS = b"+1 555 0100"


# --- E12: every data key and nonce fresh from libsodium's CSPRNG ----------------------


@pytest.mark.parametrize("count", [5_000, pytest.param(100_000, marks=pytest.mark.slow, id="1e5")])
def test_E12_data_keys_and_nonces_are_fresh_csprng_output(
    count: int, bob: Party, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws: list[bytes] = []
    real = nacl.bindings.randombytes

    def recording(size: int) -> bytes:
        out = bytes(real(size))
        draws.append(out)
        return out

    # crypto.py calls nacl.bindings.randombytes (the OS CSPRNG through libsodium) at
    # call time: if any key or nonce came from elsewhere, the checks below would fail.
    monkeypatch.setattr(nacl.bindings, "randombytes", recording)
    nonces: set[bytes] = set()
    data_keys: set[bytes] = set()
    for i in range(count):
        before = len(draws)
        sealed = crypto.seal_value(
            FIELD_FOR_RANDOMNESS, associated_data=b"ad", recipient_public_key=bob.enc_public
        )
        data_key, nonce = draws[before:]  # exactly two draws per seal: key, then nonce
        assert len(data_key) == 32
        assert len(nonce) == 24
        assert sealed.ciphertext[:24] == nonce
        assert sealed.key_commitment == crypto.key_commitment(data_key)
        if i < 20:  # the sealed key really carries that data key
            opened = nacl.bindings.crypto_box_seal_open(
                sealed.sealed_key, bob.enc_public, bob.enc_private
            )
            assert opened == data_key
        nonces.add(nonce)
        data_keys.add(data_key)
    assert len(nonces) == count
    assert len(data_keys) == count


def test_E12_no_nonce_or_key_parameters_in_the_public_sealing_api() -> None:
    import inspect

    for function in (crypto.seal_value, seal_envelope):
        params = set(inspect.signature(function).parameters)
        assert not params & {"nonce", "data_key", "key", "rng", "random", "algorithm"}


# --- E05: rotation ----------------------------------------------------------------------


def _rotated(party: Party) -> Party:
    later = party.keys.current_encryption_key.created_at + timedelta(days=30)
    return Party(keys.rotate(party.keys, now=later))


def test_E05_envelope_sealed_to_a_retired_key_still_opens_with_the_key_file(
    alice: Party,
) -> None:
    bob = new_party()
    env = seal(alice, bob)
    bob_later = _rotated(bob)
    header = header_of(env)
    assert header.recipient_key_id != bob_later.enc_key_id
    with pytest.raises(WrongRecipientError):  # the current key is not the one it was sealed to
        open_as(bob_later, alice, env)
    private = bob_later.keys.encryption_private_key(header.recipient_key_id)
    opened = open_envelope(
        env,
        recipient_private_key=private,
        sender_signing_key=alice.verify_key,
        expected_sender_org=alice.org,
        expected_recipient_org=bob.org,
    )
    assert opened.values["phone"] == "+1 555 0100"
    with pytest.raises(keys.UnknownKeyIdError):
        bob_later.keys.encryption_private_key("0" * 32)


def test_E05_retired_signing_key_refused_for_a_new_send_but_old_envelope_verifies(
    bob: Party,
) -> None:
    alice = new_party()
    old_verify_key = alice.verify_key
    env = seal(alice, bob)
    alice_later = _rotated(alice)
    parsed = parse_envelope(env)
    with pytest.raises(EnvelopeRejectedError) as info:  # checked against the current key
        verify_submission(
            parsed,
            sender_org=alice.org,
            sender_public_key=alice_later.verify_key,
            recipient_org=bob.org,
            recipient_key_id=bob.enc_key_id,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )
    assert {e.path for e in info.value.errors} == {"envelope.sender_key_id", "envelope.signature"}
    # Sent before the rotation: still verifies against the historical key id.
    assert verify_signature(parsed, old_verify_key)
    assert open_as(bob, alice, env)["phone"] == "+1 555 0100"


def test_E05_sealed_to_the_recipients_retired_key_refused_for_a_new_send(alice: Party) -> None:
    bob = new_party()
    env = seal(alice, bob)  # Bob's key at the time
    bob_later = _rotated(bob)
    with pytest.raises(EnvelopeRejectedError) as info:
        verify_submission(
            parse_envelope(env),
            sender_org=alice.org,
            sender_public_key=alice.verify_key,
            recipient_org=bob.org,
            recipient_key_id=bob_later.enc_key_id,
            subject_id=SUBJECT,
            purpose=PURPOSE,
            consent_id=CONSENT,
        )
    assert {e.path for e in info.value.errors} == {"envelope.recipient_key_id"}


def test_rotation_keeps_every_old_pair_and_exactly_the_last_is_current() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    org = keys.generate_organization_keys("0b5e1c2a-4d3f-4e6a-9b8c-7d1e2f3a4b5c", now=start)
    twice = keys.rotate(keys.rotate(org, now=start + timedelta(days=1)), now=start + timedelta(2))
    assert len(twice.encryption_keys) == len(twice.signing_keys) == 3
    assert [k.retired_at for k in twice.encryption_keys] == [
        start + timedelta(days=1),
        start + timedelta(days=2),
        None,
    ]
    assert twice.encryption_keys[0] == dataclasses.replace(
        org.encryption_keys[0], retired_at=start + timedelta(days=1)
    )


# --- E10 on the client: never seal to a weak or non-canonical key ------------------------


@pytest.mark.parametrize(
    "raw",
    [
        bytes(32),
        (2**255 - 19 + 9).to_bytes(32, "little"),  # a second spelling of the base point
        "top-bit",
    ],
)
def test_E10_client_refuses_non_canonical_or_low_order_recipient_keys(
    alice: Party, bob: Party, raw: bytes | str
) -> None:
    key = bytes([*bob.enc_public[:31], bob.enc_public[31] | 0x80]) if raw == "top-bit" else raw
    assert isinstance(key, bytes)
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


# --- E17: separate keys, separate domains ---------------------------------------------


def test_E17_organization_encryption_and_signing_keys_are_distinct(alice: Party) -> None:
    enc, sig = alice.keys.current_encryption_key, alice.keys.current_signing_key
    assert enc.public_key != sig.public_key
    assert enc.key_id != sig.key_id
    assert enc.private_key != sig.seed


def test_E17_signed_and_hashed_byte_strings_are_domain_separated() -> None:
    labels = [
        envelope_format.FIELD_AD_LABEL,
        envelope_format.FIELD_DIGEST_LABEL,
        envelope_format.SIGNATURE_LABEL,
        envelope_format.KEY_COMMITMENT_LABEL,
        envelope_format.FIELD_KEY_LABEL,
        receipts.RECEIPT_LABEL,
        keys.KEY_FILE_AD_LABEL,
    ]
    framed = [label + b"\n" for label in labels]
    assert len(set(framed)) == len(framed)
    for a in framed:
        for b in framed:
            assert a == b or not b.startswith(a)


def test_E17_envelope_signature_is_not_a_receipt_or_checkpoint_signature(
    alice: Party, bob: Party
) -> None:
    env = seal(alice, bob)
    parsed = parse_envelope(env)
    message = parsed.signed_bytes()
    signed_object = json.loads(message.split(b"\n", 1)[1])
    # The same key, the same JSON object: as a receipt it does not verify.
    forged_receipt: dict[str, Any] = {
        "receipt": signed_object,
        "signature": {
            "alg": "Ed25519",
            "label": receipts.RECEIPT_LABEL.decode(),
            "value": b64encode(parsed.signature),
        },
    }
    with pytest.raises(receipts.ReceiptError):
        receipts.verify_receipt(forged_receipt, public_key=alice.verify_key)
    # And a receipt-style signature over that object is not an envelope signature.
    receipt_signature = crypto.sign_ed25519(alice.seed, receipts.receipt_message(signed_object))
    assert not crypto.verify_ed25519(alice.verify_key, message, receipt_signature)
    # The envelope's signed text can never be read as a checkpoint body.
    with pytest.raises(CheckpointError):
        parse_checkpoint(message.decode("utf-8"))


# --- the key file ---------------------------------------------------------------------


@pytest.fixture
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """libsodium's INTERACTIVE profile (64 MiB) instead of MODERATE (256 MiB) for speed;
    still within the range the loader accepts."""
    monkeypatch.setattr(
        keys,
        "_NEW_FILE_KDF",
        (crypto.ARGON2ID_OPSLIMIT_INTERACTIVE, crypto.ARGON2ID_MEMLIMIT_INTERACTIVE),
    )


PASSPHRASE = "correct horse battery staple \u00e9"


@pytest.mark.usefixtures("fast_kdf")
def test_key_file_round_trip_is_owner_only_and_hides_secrets(tmp_path: Path) -> None:
    org = keys.rotate(keys.generate_organization_keys("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"))
    path = tmp_path / "keys" / "org.json"
    keys.save_key_file(org, path, PASSPHRASE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    secrets = [k.private_key for k in org.encryption_keys] + [k.seed for k in org.signing_keys]
    for secret in secrets:
        assert b64encode(secret) not in text
        assert repr(secret) not in repr(org)
        assert secret.hex() not in repr(org)
    # NFC: the same passphrase typed with a combining accent opens it.
    assert keys.load_key_file(path, "correct horse battery staple e\u0301") == org
    with pytest.raises(FileExistsError):
        keys.save_key_file(org, path, PASSPHRASE)
    keys.save_key_file(org, path, "another passphrase", overwrite=True)
    with pytest.raises(keys.KeyFileDecryptionError):
        keys.load_key_file(path, PASSPHRASE)


@pytest.mark.usefixtures("fast_kdf")
def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "org.json"
    keys.save_key_file(keys.generate_organization_keys("x"), path, PASSPHRASE)
    path.chmod(0o640)
    with pytest.raises(keys.KeyFileError, match="group or others"):
        keys.load_key_file(path, PASSPHRASE)


@pytest.fixture
def key_file_document(fast_kdf: None) -> dict[str, Any]:
    data = keys.encrypt_key_file(keys.generate_organization_keys("x"), PASSPHRASE)
    document: dict[str, Any] = json.loads(data)
    return document


def _reload(document: dict[str, Any]) -> keys.OrganizationKeys:
    return keys.decrypt_key_file(json.dumps(document).encode(), PASSPHRASE)


def test_key_file_header_is_authenticated(key_file_document: dict[str, Any]) -> None:
    assert _reload(key_file_document).org_id == "x"
    # A header edit inside the accepted range (here: fewer passes) fails like a wrong passphrase.
    key_file_document["kdf"]["opslimit"] = crypto.ARGON2ID_OPSLIMIT_INTERACTIVE + 1
    with pytest.raises(keys.KeyFileDecryptionError):
        _reload(key_file_document)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(lambda d: d.update(version=2), "version", id="version"),
        pytest.param(lambda d: d["kdf"].update(opslimit=1), "opslimit", id="weak-opslimit"),
        pytest.param(lambda d: d["kdf"].update(memlimit=2**40), "memlimit", id="huge-memlimit"),
        pytest.param(lambda d: d["kdf"].update(algorithm="scrypt"), "algorithm", id="kdf"),
        pytest.param(lambda d: d["kdf"].update(salt="QR=="), "salt", id="salt"),
        pytest.param(lambda d: d.update(extra=1), "exactly the keys", id="extra-key"),
        pytest.param(lambda d: d.update(cipher="aes"), "not an Accord", id="cipher"),
    ],
)
def test_key_file_format_problems_are_refused_before_deriving(
    key_file_document: dict[str, Any], edit: Any, message: str
) -> None:
    edit(key_file_document)
    with pytest.raises(keys.KeyFileFormatError, match=message):
        _reload(key_file_document)


def test_key_file_with_duplicate_keys_is_refused(key_file_document: dict[str, Any]) -> None:
    text = json.dumps(key_file_document)
    forged = text.replace('"version": 1', '"version": 1, "version": 1', 1)
    with pytest.raises(keys.KeyFileFormatError):
        keys.decrypt_key_file(forged.encode(), PASSPHRASE)


def test_empty_passphrase_refused() -> None:
    with pytest.raises(keys.KeyFileError, match="empty"):
        keys.encrypt_key_file(keys.generate_organization_keys("x"), "")


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        keys.generate_organization_keys("x", now=datetime(2026, 1, 1))  # noqa: DTZ001
