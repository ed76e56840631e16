"""Reference implementation of docs/envelope.md, written from the text, used to
generate tests/vectors/envelope.json.

It deliberately imports nothing from accord_client or service: hashlib for
SHA-256 and keyed BLAKE2b, json for RFC 8785 on the restricted subset, and raw
libsodium calls (through nacl.bindings) for XChaCha20-Poly1305, the sealed box
(built by hand from crypto_box with a fixed ephemeral seed, so it is
reproducible; a genuine crypto_box_seal_open must open it) and Ed25519.

Regenerate (only when the specification changes on purpose):
    .venv/bin/python -m tests.envelopes.vector_build > tests/vectors/envelope.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import nacl.bindings as sodium

from .vector_negative import (
    ed25519_key_cases,
    ed25519_signature_cases,
    rejections,
    x25519_key_cases,
)
from .vector_sodium import b64, jcs, seal_deterministic, seeded

FIELDS = [  # already in ascending name order, as the format requires
    ("address_note", "location", "Room 4, back entrance\nring twice"),
    ("case_notes", "case_summary", ""),
    ("full_name", "identity", "Ana María Pérez"),
    ("languages", "language", "es\u0000pt 😀 𝄞 \u2028 \u00e9 vs e\u0301"),
    ("phone", "contact", "+1 555 0100"),
]


def build() -> dict[str, Any]:
    recipient_sk = seeded("accord vector recipient x25519 private key")
    recipient_pk = sodium.crypto_scalarmult_base(recipient_sk)
    sender_seed = seeded("accord vector sender ed25519 seed")
    sender_pk, sender_sk = sodium.crypto_sign_seed_keypair(sender_seed)
    header = {
        "version": 1,
        "sender_org": "0b5e1c2a-4d3f-4e6a-9b8c-7d1e2f3a4b5c",
        "sender_key_id": hashlib.sha256(sender_pk).hexdigest()[:32],
        "recipient_org": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
        "recipient_key_id": hashlib.sha256(recipient_pk).hexdigest()[:32],
        "context": {
            "subject_id": "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99",
            "purpose": "services_referral",
            "consent_id": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
            "request_id": None,
        },
    }
    fields_out = []
    wire_fields = []
    digests = []
    for name, category, value in FIELDS:
        data_key = seeded(f"data key {name}")
        nonce = hashlib.sha256(f"nonce {name}".encode()).digest()[:24]
        ephemeral_seed = seeded(f"ephemeral {name}")
        ad = b"accord/envelope/v1/field-ad\n" + jcs(
            {"header": header, "name": name, "category": category}
        )
        field_key = hashlib.blake2b(
            b"accord/envelope/v1/field-encryption-key", digest_size=32, key=data_key
        ).digest()
        commitment = hashlib.blake2b(
            b"accord/envelope/v1/key-commitment", digest_size=32, key=data_key
        ).digest()
        ciphertext = nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            value.encode("utf-8"), ad, nonce, field_key
        )
        sealed_key = seal_deterministic(data_key, recipient_pk, ephemeral_seed)
        preimage = {
            "name": name,
            "category": category,
            "ciphertext_sha256": b64(hashlib.sha256(ciphertext).digest()),
            "sealed_key_sha256": b64(hashlib.sha256(sealed_key).digest()),
            "key_commitment": b64(commitment),
        }
        digest = hashlib.sha256(b"accord/envelope/v1/field-digest\n" + jcs(preimage)).digest()
        digests.append(digest)
        wire_fields.append(
            {
                "name": name,
                "category": category,
                "ciphertext": b64(ciphertext),
                "sealed_key": b64(sealed_key),
                "key_commitment": b64(commitment),
            }
        )
        fields_out.append(
            {
                "name": name,
                "category": category,
                "value": value,
                "value_utf8_hex": value.encode("utf-8").hex(),
                "data_key_hex": data_key.hex(),
                "nonce_hex": nonce.hex(),
                "ephemeral_seed_hex": ephemeral_seed.hex(),
                "field_encryption_key_hex": field_key.hex(),
                "associated_data": ad.decode("utf-8"),
                "key_commitment_hex": commitment.hex(),
                "ciphertext_hex": ciphertext.hex(),
                "sealed_key_hex": sealed_key.hex(),
                "digest_preimage": (b"accord/envelope/v1/field-digest\n" + jcs(preimage)).decode(),
                "digest_hex": digest.hex(),
            }
        )
    message = b"accord/envelope/v1/signature\n" + jcs(
        {"header": header, "manifest": [b64(d) for d in digests]}
    )
    signature = sodium.crypto_sign(message, sender_sk)[:64]
    envelope = {**header, "fields": wire_fields, "signature": b64(signature)}
    canonical = jcs(envelope)
    released = {"full_name", "phone"}
    delivery = {
        "envelope_header": header,
        "released": [f for f in wire_fields if f["name"] in released],
        "withheld": [
            {
                "name": f["name"],
                "category": f["category"],
                "ciphertext_sha256": b64(
                    hashlib.sha256(bytes.fromhex(f["ciphertext_hex"])).digest()
                ),
                "sealed_key_sha256": b64(
                    hashlib.sha256(bytes.fromhex(f["sealed_key_hex"])).digest()
                ),
                "key_commitment": b64(bytes.fromhex(f["key_commitment_hex"])),
                "digest": b64(bytes.fromhex(f["digest_hex"])),
                "reasons": ["no_consent_for_category"],
                "policies": ["default.consent_required"],
            }
            for f in fields_out
            if f["name"] not in released
        ],
        "signature": b64(signature),
        "sender_key_id": header["sender_key_id"],
        "disclosure_seq": 42,
    }
    keys = {"recipient_sk": recipient_sk, "recipient_pk": recipient_pk, "sender_sk": sender_sk}
    return {
        "description": "Accord envelope v1 test vectors; see docs/envelope.md. Byte strings "
        "are lowercase hex (*_hex) unless they are wire values (standard base64).",
        "recipient": {
            "x25519_private_key_hex": recipient_sk.hex(),
            "x25519_public_key_hex": recipient_pk.hex(),
            "key_id": header["recipient_key_id"],
        },
        "sender": {
            "ed25519_seed_hex": sender_seed.hex(),
            "ed25519_public_key_hex": sender_pk.hex(),
            "key_id": header["sender_key_id"],
        },
        "header": header,
        "fields": fields_out,
        "signed_bytes": message.decode("utf-8"),
        "signature_hex": signature.hex(),
        "envelope": envelope,
        "envelope_canonical": canonical.decode("utf-8"),
        "envelope_id": hashlib.sha256(canonical).hexdigest(),
        "delivery": {
            "document": delivery,
            "expected_values": {name: v for name, _, v in FIELDS if name in released},
        },
        "canonical_json": [
            {
                "input": {"b": 1, "a": [True, None, -7], "A": {}},
                "output": '{"A":{},"a":[true,null,-7],"b":1}',
            },
            {
                "input": {"s": 'é\u0000\n\t"\\/\u001f\u007f\u2028😀'},
                "output": '{"s":"é\\u0000\\n\\t\\"\\\\/\\u001f\u007f\u2028😀"}',
            },
            {
                "input": [9007199254740991, -9007199254740991, 0],
                "output": "[9007199254740991,-9007199254740991,0]",
            },
        ],
        "base64": [
            {"text": "AAEC", "valid": True},
            {"text": "", "valid": True},
            {"text": "QQ==", "valid": True},
            {"text": "QR==", "valid": False, "why": "non-zero padding bits"},
            {"text": "QQ", "valid": False, "why": "missing padding"},
            {"text": "QQ=", "valid": False, "why": "short padding"},
            {"text": "AA EC", "valid": False, "why": "whitespace"},
            {"text": "AAEC\n", "valid": False, "why": "trailing newline"},
            {"text": "-_8A", "valid": False, "why": "URL-safe alphabet"},
            {"text": "QQ==QQ==", "valid": False, "why": "padding inside"},
            {"text": "ＡＡＥＣ", "valid": False, "why": "non-ASCII digits"},
        ],
        "x25519_public_keys": x25519_key_cases(recipient_pk),
        "ed25519_public_keys": ed25519_key_cases(sender_pk),
        "ed25519_signatures": ed25519_signature_cases(sender_pk, message, signature),
        "rejections": rejections(envelope, header, fields_out, delivery, keys),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
