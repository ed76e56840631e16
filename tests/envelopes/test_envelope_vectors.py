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
from accord_client.envelope import open_delivery, open_envelope
from accord_client.envelope_errors import (
    CommitmentMismatchError,
    DecryptionFailedError,
    EnvelopeError,
    EnvelopeMalformedError,
    InvalidKeyError,
    SignatureInvalidError,
)
from accord_client.envelope_format import (
    EnvelopeContext,
    EnvelopeHeader,
    b64decode_strict,
    b64encode,
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
from service.envelopes.verify import EnvelopeRejectedError, parse_envelope, verify_signature

from .vector_build import build

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "envelope.md"

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "envelope.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return data


def _header(v: dict[str, Any]) -> EnvelopeHeader:
    h = v["header"]
    return EnvelopeHeader(
        sender_org=h["sender_org"],
        sender_key_id=h["sender_key_id"],
        recipient_org=h["recipient_org"],
        recipient_key_id=h["recipient_key_id"],
        context=EnvelopeContext(**h["context"]),
    )


def _cases(section: str) -> list[tuple[str, dict[str, Any]]]:
    """Cases of a list section of the vector file, as pytest parameters named by `why`/`name`."""
    data = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return [(case.get("name") or case["why"], case) for case in data[section]]


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


def _open_kwargs(vectors: dict[str, Any]) -> dict[str, Any]:
    return {
        "recipient_private_key": bytes.fromhex(vectors["recipient"]["x25519_private_key_hex"]),
        "sender_signing_key": bytes.fromhex(vectors["sender"]["ed25519_public_key_hex"]),
        "expected_sender_org": vectors["header"]["sender_org"],
        "expected_recipient_org": vectors["header"]["recipient_org"],
    }


def test_vector_envelope_and_delivery_open(vectors: dict[str, Any]) -> None:
    kwargs = _open_kwargs(vectors)
    opened = open_envelope(json.dumps(vectors["envelope"], ensure_ascii=False), **kwargs)
    assert opened.values == {f["name"]: f["value"] for f in vectors["fields"]}
    assert opened.header.to_json() == vectors["header"]
    assert opened.withheld == ()
    delivered = open_delivery(vectors["delivery"]["document"], **kwargs)
    assert delivered.values == vectors["delivery"]["expected_values"]
    withheld = vectors["delivery"]["document"]["withheld"]
    assert [(e.name, e.category) for e in delivered.withheld] == [
        (w["name"], w["category"]) for w in withheld
    ]
    assert [b64encode(e.digest()) for e in delivered.withheld] == [w["digest"] for w in withheld]


def test_server_builds_the_vector_delivery(vectors: dict[str, Any]) -> None:
    envelope = parse_envelope(vectors["envelope"])
    doc = vectors["delivery"]["document"]
    released = [f for f in envelope.fields if f.name in vectors["delivery"]["expected_values"]]
    withheld = [
        server_format.WithheldField(
            entry=f.manifest_entry(),
            reasons=("no_consent_for_category",),
            policies=("default.consent_required",),
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


@pytest.mark.parametrize(("why", "case"), _cases("x25519_public_keys"))
def test_E10_x25519_public_key_vectors(why: str, case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["public_key_hex"])
    for validate in (crypto.validate_x25519_public_key, service_crypto.validate_x25519_public_key):
        if case["valid"]:
            validate(raw)
        else:
            with pytest.raises(InvalidKeyError):
                validate(raw)


@pytest.mark.parametrize(("why", "case"), _cases("ed25519_public_keys"))
def test_E10_ed25519_public_key_vectors(why: str, case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["public_key_hex"])
    if case["valid"]:
        crypto.validate_ed25519_public_key(raw)
    else:
        with pytest.raises(InvalidKeyError):
            crypto.validate_ed25519_public_key(raw)


@pytest.mark.parametrize(("why", "case"), _cases("ed25519_signatures"))
def test_strict_ed25519_signature_vectors(why: str, case: dict[str, Any]) -> None:
    args = [bytes.fromhex(case[k]) for k in ("public_key_hex", "message_hex", "signature_hex")]
    assert crypto.verify_ed25519(*args) is case["valid"]
    assert service_crypto.verify_ed25519(*args) is case["valid"]


def test_small_order_signature_vector_would_pass_a_permissive_verifier(
    vectors: dict[str, Any],
) -> None:
    # Why the strict check matters: with A = R = identity and S = 0 the textbook
    # equation [S]B = R + [k]A holds for every message. Checked here with the
    # group law directly, so the vector cannot silently stop exercising it.
    case = next(c for c in vectors["ed25519_signatures"] if "small-order" in c["why"])
    identity = bytes.fromhex(case["public_key_hex"])
    signature = bytes.fromhex(case["signature_hex"])
    assert signature[:32] == identity
    assert signature[32:] == bytes(32)
    assert nacl.bindings.crypto_core_ed25519_add(identity, identity) == identity


def _expect_refused(case: dict[str, Any], vectors: dict[str, Any]) -> EnvelopeError:
    opener = open_envelope if case["document"] == "envelope" else open_delivery
    with pytest.raises(EnvelopeError) as info:
        opener(case["json"].encode("utf-8"), **_open_kwargs(vectors))
    return info.value


@pytest.mark.parametrize(("name", "case"), _cases("rejections"))
def test_rejection_vectors_are_refused_by_client_and_service(
    name: str, case: dict[str, Any], vectors: dict[str, Any]
) -> None:
    expect = case["expect"]
    error = _expect_refused(case, vectors)
    sender_key = bytes.fromhex(vectors["sender"]["ed25519_public_key_hex"])
    if expect["error"] == "malformed":
        wanted = [(p["path"], p["code"]) for p in expect["problems"]]
        assert isinstance(error, EnvelopeMalformedError)
        assert [(p.path, p.code) for p in error.problems] == wanted
        if case["document"] == "envelope":
            with pytest.raises(EnvelopeRejectedError) as info:
                parse_envelope(case["json"].encode("utf-8"))
            assert [(e.path, e.extra["code"]) for e in info.value.errors] == wanted
        return
    kinds = {
        "signature": SignatureInvalidError,
        "key_commitment": CommitmentMismatchError,
        "decryption": DecryptionFailedError,
    }
    assert type(error) is kinds[expect["error"]]
    if case["document"] == "envelope":
        # The service sees what the signature covers: only a re-signed forgery passes it.
        signed_ok = verify_signature(parse_envelope(case["json"].encode("utf-8")), sender_key)
        assert signed_ok is (expect["error"] != "signature")


def test_docs_worked_example_matches_the_vectors(vectors: dict[str, Any]) -> None:
    """docs/envelope.md quotes the vectors; the quotes must stay byte-exact."""
    doc = DOC_PATH.read_text(encoding="utf-8")
    phone = next(f for f in vectors["fields"] if f["name"] == "phone")
    for quoted in (
        vectors["envelope_id"],
        vectors["signature_hex"],
        vectors["sender"]["key_id"],
        vectors["recipient"]["key_id"],
        phone["associated_data"],
        phone["digest_preimage"],
        phone["digest_hex"],
        phone["key_commitment_hex"],
        phone["data_key_hex"],
        phone["nonce_hex"],
    ):
        assert quoted in doc
