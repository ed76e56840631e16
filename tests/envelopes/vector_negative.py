"""Negative test vectors: keys, signatures and documents that every implementation
of docs/envelope.md must refuse, built from the text like vector_build.py."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import nacl.bindings as sodium

from .vector_sodium import b64, field_digest, jcs, seal_deterministic, seeded

# --- key and signature strictness (docs/envelope.md "Keys and signatures") -----------

P25519 = 2**255 - 19
ED25519_L = 2**252 + 27742317777372353535851937790883648493
ED25519_ORDER_8_POINT = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"


def le32(n: int) -> str:
    return n.to_bytes(32, "little").hex()


def x25519_key_cases(recipient_pk: bytes) -> list[dict[str, Any]]:
    high_bit = bytearray(recipient_pk)
    high_bit[31] |= 0x80
    bad = [
        (le32(0), "zero: order 1"),
        (le32(1), "order 4"),
        ("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "order 8"),
        ("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", "order 8"),
        (le32(P25519 - 1), "order 2"),
        (le32(P25519), "u = p: non-canonical spelling of zero"),
        (le32(P25519 + 1), "u = p + 1: non-canonical spelling of 1"),
        (le32(P25519 + 9), "u = p + 9: non-canonical spelling of the base point"),
        (bytes(high_bit).hex(), "the recipient's key with the ignored top bit set"),
        (recipient_pk[:31].hex(), "31 bytes"),
        ((recipient_pk + b"\0").hex(), "33 bytes"),
    ]
    return [
        {"public_key_hex": recipient_pk.hex(), "valid": True, "why": "the vectors' recipient"},
        {"public_key_hex": le32(9), "valid": True, "why": "the base point"},
        *({"public_key_hex": k, "valid": False, "why": why} for k, why in bad),
    ]


def ed25519_key_cases(sender_pk: bytes) -> list[dict[str, Any]]:
    mixed = sodium.crypto_core_ed25519_add(sender_pk, bytes.fromhex(ED25519_ORDER_8_POINT))
    bad = [
        (le32(1), "identity: small order"),
        (ED25519_ORDER_8_POINT, "order 8"),
        (le32(P25519 - 1), "y = -1: order 2"),
        (le32(P25519 + 1), "y = p + 1: non-canonical encoding"),
        (mixed.hex(), "the sender's key plus an order-8 point: not in the prime-order subgroup"),
        ("02" + "ff" * 31, "not a point on the curve"),
        (sender_pk[:31].hex(), "31 bytes"),
    ]
    return [
        {"public_key_hex": sender_pk.hex(), "valid": True, "why": "the vectors' sender"},
        *({"public_key_hex": k, "valid": False, "why": why} for k, why in bad),
    ]


def ed25519_signature_cases(pk: bytes, message: bytes, signature: bytes) -> list[dict[str, Any]]:
    s_plus_l = int.from_bytes(signature[32:], "little") + ED25519_L
    identity = bytes.fromhex(le32(1))
    cases = [
        (pk, message, signature, True, "the vectors' envelope signature"),
        (pk, message + b" ", signature, False, "message changed"),
        (
            pk,
            message,
            signature[:32] + s_plus_l.to_bytes(32, "little"),
            False,
            "S + L: non-canonical S",
        ),
        (
            identity,
            b"any message",
            identity + bytes(32),
            False,
            "small-order key, R = identity, S = 0",
        ),
        (pk, message, signature[:63], False, "63-byte signature"),
    ]
    return [
        {
            "public_key_hex": k.hex(),
            "message_hex": m.hex(),
            "signature_hex": sig.hex(),
            "valid": ok,
            "why": why,
        }
        for k, m, sig, ok, why in cases
    ]


# --- documents every implementation must refuse ------------------------------------


def sign_envelope(envelope: dict[str, Any], sender_sk: bytes) -> dict[str, Any]:
    """Re-sign a modified envelope: models a malicious sender, so the layers under
    the signature (AEAD, key commitment) are what must refuse it."""
    header = {k: v for k, v in envelope.items() if k not in ("fields", "signature")}
    digests = [
        b64(
            field_digest(
                f["name"],
                f["category"],
                base64.b64decode(f["ciphertext"]),
                base64.b64decode(f["sealed_key"]),
                base64.b64decode(f["key_commitment"]),
            )
        )
        for f in envelope["fields"]
    ]
    message = b"accord/envelope/v1/signature\n" + jcs({"header": header, "manifest": digests})
    return {**envelope, "signature": b64(sodium.crypto_sign(message, sender_sk)[:64])}


def rejections(
    envelope: dict[str, Any],
    header: dict[str, Any],
    fields: list[dict[str, Any]],
    delivery: dict[str, Any],
    keys: dict[str, bytes],
) -> list[dict[str, Any]]:
    """Each case: the exact JSON text, and what must happen. `malformed` lists every
    problem (path and code) a conforming parser reports; `signature` and
    `key_commitment` name the check of the opening procedure that must refuse it."""

    def copy() -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(json.dumps(envelope))
        return doc

    def text(doc: Any) -> str:
        return json.dumps(doc, ensure_ascii=False)

    def malformed(*problems: tuple[str, str]) -> dict[str, Any]:
        return {"error": "malformed", "problems": [{"path": p, "code": c} for p, c in problems]}

    out: list[dict[str, Any]] = []
    doc = copy()
    doc["version"] = 2
    out.append(
        {
            "name": "unknown_version",
            "document": "envelope",
            "json": text(doc),
            "expect": malformed(("envelope.version", "unsupported_version")),
        }
    )
    doc = copy()
    doc["x"] = 1
    out.append(
        {
            "name": "unknown_top_level_key",
            "document": "envelope",
            "json": text(doc),
            "expect": malformed(("envelope.x", "unknown_key")),
        }
    )
    raw = text(envelope).replace('"purpose": "', '"purpose": "prosecution", "purpose": "', 1)
    out.append(
        {
            "name": "duplicate_key",
            "document": "envelope",
            "json": raw,
            "expect": malformed(("envelope.context.purpose", "duplicate_key")),
        }
    )
    doc = copy()
    sealed = doc["fields"][0]["sealed_key"]  # 80 bytes: the last character carries 4 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    doc["fields"][0]["sealed_key"] = sealed[:-2] + alphabet[alphabet.index(sealed[-2]) ^ 1] + "="
    out.append(
        {
            "name": "non_canonical_base64",
            "document": "envelope",
            "json": text(doc),
            "expect": malformed(("envelope.fields[0].sealed_key", "base64")),
        }
    )
    doc = copy()
    doc["fields"][0], doc["fields"][1] = doc["fields"][1], doc["fields"][0]
    out.append(
        {
            "name": "fields_out_of_order",
            "document": "envelope",
            "json": text(doc),
            "expect": malformed(("envelope.fields[1].name", "order")),
        }
    )
    doc = copy()
    doc["fields"][1]["key_commitment"] = b64(b"\0" * 31)
    out.append(
        {
            "name": "short_key_commitment",
            "document": "envelope",
            "json": text(doc),
            "expect": malformed(("envelope.fields[1].key_commitment", "length")),
        }
    )
    doc = copy()
    ct = bytearray(base64.b64decode(doc["fields"][0]["ciphertext"]))
    ct[30] ^= 1
    doc["fields"][0]["ciphertext"] = b64(bytes(ct))
    out.append(
        {
            "name": "flipped_ciphertext_bit",
            "document": "envelope",
            "json": text(doc),
            "expect": {"error": "signature"},
        }
    )
    doc = copy()
    doc["fields"][2]["category"] = "needs"
    out.append(
        {
            "name": "relabelled_category",
            "document": "envelope",
            "json": text(doc),
            "expect": {"error": "signature"},
        }
    )
    doc = copy()
    doc["context"]["purpose"] = "prosecution"
    out.append(
        {
            "name": "changed_purpose",
            "document": "envelope",
            "json": text(doc),
            "expect": {"error": "signature"},
        }
    )
    # E11: ciphertext and sealed key under K', commitment to K, validly signed.
    doc = copy()
    f = doc["fields"][0]
    other_key, committed_key = seeded("forged data key"), seeded(f"data key {f['name']}")
    nonce = seeded("forged nonce")[:24]
    ad = b"accord/envelope/v1/field-ad\n" + jcs(
        {"header": header, "name": f["name"], "category": f["category"]}
    )
    field_key = hashlib.blake2b(
        b"accord/envelope/v1/field-encryption-key", digest_size=32, key=other_key
    ).digest()
    f["ciphertext"] = b64(
        nonce
        + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            b"a different value", ad, nonce, field_key
        )
    )
    f["sealed_key"] = b64(
        seal_deterministic(other_key, keys["recipient_pk"], seeded("forged ephemeral"))
    )
    f["key_commitment"] = b64(
        hashlib.blake2b(
            b"accord/envelope/v1/key-commitment", digest_size=32, key=committed_key
        ).digest()
    )
    out.append(
        {
            "name": "key_commitment_mismatch",
            "document": "envelope",
            "json": text(sign_envelope(doc, keys["sender_sk"])),
            "expect": {"error": "key_commitment"},
        }
    )
    # AEAD: a ciphertext moved to another field's name, re-signed by the sender.
    doc = copy()
    a, b = doc["fields"][0], doc["fields"][1]
    for key in ("ciphertext", "sealed_key", "key_commitment"):
        a[key], b[key] = b[key], a[key]
    out.append(
        {
            "name": "fields_swapped_and_resigned",
            "document": "envelope",
            "json": text(sign_envelope(doc, keys["sender_sk"])),
            "expect": {"error": "decryption"},
        }
    )
    # Deliveries: a withheld entry must be consistent with its digest and signed.
    dlv = json.loads(json.dumps(delivery))
    dlv["withheld"][0]["digest"] = b64(hashlib.sha256(b"x").digest())
    out.append(
        {
            "name": "withheld_digest_mismatch",
            "document": "delivery",
            "json": text(dlv),
            "expect": malformed(("delivery.withheld[0].digest", "digest_mismatch")),
        }
    )
    dlv = json.loads(json.dumps(delivery))
    w = dlv["withheld"][0]
    w["category"] = "needs"
    preimage = {k: w[k] for k in ("name", "category", "ciphertext_sha256", "sealed_key_sha256")}
    preimage["key_commitment"] = w["key_commitment"]
    w["digest"] = b64(hashlib.sha256(b"accord/envelope/v1/field-digest\n" + jcs(preimage)).digest())
    out.append(
        {
            "name": "withheld_entry_relabelled",
            "document": "delivery",
            "json": text(dlv),
            "expect": {"error": "signature"},
        }
    )
    dlv = json.loads(json.dumps(delivery))
    dlv["withheld"].pop()
    out.append(
        {
            "name": "withheld_entry_dropped",
            "document": "delivery",
            "json": text(dlv),
            "expect": {"error": "signature"},
        }
    )
    return out
