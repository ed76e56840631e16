"""The production code against tests/vectors/envelope.json (docs/envelope.md).

The vectors come from tests/envelopes/vector_build.py, a second implementation
written from the specification with hashlib and raw libsodium calls only.
Every deterministic byte is recomputed here by the production code (client and
service) and compared; the randomized sealed boxes are checked to open.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest
from accord_client import crypto
from accord_client.envelope_format import (
    EnvelopeContext,
    EnvelopeHeader,
    b64decode_strict,
    canonical_json,
    envelope_id,
    field_ad,
    field_digest,
    key_id_for,
    signed_bytes,
)
from accord_client.envelope_parse import parse_delivery_obj

from service import crypto as service_crypto
from service.envelopes import format as server_format
from service.envelopes.verify import parse_envelope, verify_signature

from .vector_build import build

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "envelope.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def _header(v: dict[str, Any]) -> EnvelopeHeader:
    h = v["header"]
    return EnvelopeHeader(
        sender_org=h["sender_org"],
        sender_key_id=h["sender_key_id"],
        recipient_org=h["recipient_org"],
        recipient_key_id=h["recipient_key_id"],
        context=EnvelopeContext(**h["context"]),
    )


def test_vector_file_matches_reference_builder(vectors: dict[str, Any]) -> None:
    # Guards against editing either side alone: the stored file must be exactly
    # what the reference implementation produces.
    assert vectors == json.loads(json.dumps(build(), ensure_ascii=False))


def test_key_ids_match_vectors_and_service_rule(vectors: dict[str, Any]) -> None:
    for party, pk_name in (
        ("recipient", "x25519_public_key_hex"),
        ("sender", "ed25519_public_key_hex"),
    ):
        public = bytes.fromhex(vectors[party][pk_name])
        assert key_id_for(public) == vectors[party]["key_id"]
        assert service_crypto.key_id_for(public) == vectors[party]["key_id"]
    sk = bytes.fromhex(vectors["recipient"]["x25519_private_key_hex"])
    assert crypto.x25519_public_key(sk).hex() == vectors["recipient"]["x25519_public_key_hex"]
    seed = bytes.fromhex(vectors["sender"]["ed25519_seed_hex"])
    assert crypto.ed25519_public_key(seed).hex() == vectors["sender"]["ed25519_public_key_hex"]


def test_field_bytes_match_vectors(vectors: dict[str, Any]) -> None:
    header = _header(vectors)
    assert header.to_json() == vectors["header"]
    for f in vectors["fields"]:
        ad = field_ad(header, f["name"], f["category"])
        assert ad == f["associated_data"].encode("utf-8")
        data_key = bytes.fromhex(f["data_key_hex"])
        assert crypto.key_commitment(data_key).hex() == f["key_commitment_hex"]
        sealed = crypto._seal_value_with(
            f["value"].encode("utf-8"),
            associated_data=ad,
            data_key=data_key,
            nonce=bytes.fromhex(f["nonce_hex"]),
            sealed_key=bytes.fromhex(f["sealed_key_hex"]),
        )
        assert sealed.ciphertext.hex() == f["ciphertext_hex"]
        assert sealed.key_commitment.hex() == f["key_commitment_hex"]
        digest = field_digest(
            f["name"], f["category"], sealed.ciphertext, sealed.sealed_key, sealed.key_commitment
        )
        assert digest.hex() == f["digest_hex"]


def test_vector_sealed_keys_open_with_libsodium(vectors: dict[str, Any]) -> None:
    sk = bytes.fromhex(vectors["recipient"]["x25519_private_key_hex"])
    pk = bytes.fromhex(vectors["recipient"]["x25519_public_key_hex"])
    for f in vectors["fields"]:
        sealed_key = bytes.fromhex(f["sealed_key_hex"])
        assert len(sealed_key) == 80
        assert nacl.bindings.crypto_box_seal_open(sealed_key, pk, sk).hex() == f["data_key_hex"]


def test_signed_bytes_signature_and_id_match_vectors(vectors: dict[str, Any]) -> None:
    header = _header(vectors)
    digests = [bytes.fromhex(f["digest_hex"]) for f in vectors["fields"]]
    message = signed_bytes(header, digests)
    assert message == vectors["signed_bytes"].encode("utf-8")
    seed = bytes.fromhex(vectors["sender"]["ed25519_seed_hex"])
    # Ed25519 is deterministic: the same seed and message give the same signature.
    assert crypto.sign_ed25519(seed, message).hex() == vectors["signature_hex"]
    envelope = parse_envelope(json.dumps(vectors["envelope"]).encode())
    assert envelope.signed_bytes() == message
    assert canonical_json(envelope.to_json()) == vectors["envelope_canonical"].encode("utf-8")
    assert envelope_id(envelope) == vectors["envelope_id"]
    assert server_format.envelope_id(envelope) == vectors["envelope_id"]
    public = bytes.fromhex(vectors["sender"]["ed25519_public_key_hex"])
    assert verify_signature(envelope, public)


def test_vector_envelope_and_delivery_open(vectors: dict[str, Any]) -> None:
    from accord_client.envelope import open_delivery, open_envelope

    kwargs: dict[str, Any] = {
        "recipient_private_key": bytes.fromhex(vectors["recipient"]["x25519_private_key_hex"]),
        "sender_signing_key": bytes.fromhex(vectors["sender"]["ed25519_public_key_hex"]),
        "expected_sender_org": vectors["header"]["sender_org"],
        "expected_recipient_org": vectors["header"]["recipient_org"],
    }
    values = open_envelope(vectors["envelope"], **kwargs)
    assert values == {f["name"]: f["value"] for f in vectors["fields"]}
    delivered = open_delivery(vectors["delivery"]["document"], **kwargs)
    assert delivered == vectors["delivery"]["expected_values"]


def test_server_builds_the_vector_delivery(vectors: dict[str, Any]) -> None:
    envelope = parse_envelope(vectors["envelope"])
    doc = vectors["delivery"]["document"]
    released = [f for f in envelope.fields if f.name in vectors["delivery"]["expected_values"]]
    withheld = [
        server_format.WithheldField(
            f.manifest_entry(), ("no_consent_for_category",), ("default.consent_required",)
        )
        for f in envelope.fields
        if f.name not in vectors["delivery"]["expected_values"]
    ]
    built = server_format.build_delivery(
        header=envelope.header,
        signature=envelope.signature,
        released=released,
        withheld=withheld,
        disclosure_seq=doc["disclosure_seq"],
    )
    assert built == doc
    parsed, problems = parse_delivery_obj(built)
    assert problems == ()
    assert parsed is not None


def test_canonical_json_vectors(vectors: dict[str, Any]) -> None:
    for case in vectors["canonical_json"]:
        assert canonical_json(case["input"]) == case["output"].encode("utf-8")


def test_strict_base64_vectors_client_and_service_agree(vectors: dict[str, Any]) -> None:
    for case in vectors["base64"]:
        for decode in (b64decode_strict, service_crypto.b64decode_strict):
            if case["valid"]:
                assert base64.b64encode(decode(case["text"])).decode() == case["text"]
            else:
                with pytest.raises(ValueError, match="base64"):
                    decode(case["text"])
