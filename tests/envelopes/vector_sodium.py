"""Primitives of the reference implementation of docs/envelope.md (test vectors only).

Written from the specification's text with hashlib, json and raw libsodium calls
(nacl.bindings); imports nothing from accord_client or service, so the vectors
are an independent check of the production code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import nacl.bindings as sodium


def jcs(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def seeded(label: str) -> bytes:
    """Fixed 32-byte test inputs: SHA-256 of a readable label."""
    return hashlib.sha256(label.encode()).digest()


def seal_deterministic(message: bytes, recipient_pk: bytes, ephemeral_seed: bytes) -> bytes:
    """libsodium's crypto_box_seal with a chosen ephemeral key pair:
    epk || crypto_box(m, nonce = BLAKE2b-192(epk || recipient_pk), recipient_pk, esk)."""
    epk, esk = sodium.crypto_box_seed_keypair(ephemeral_seed)
    nonce = hashlib.blake2b(epk + recipient_pk, digest_size=24).digest()
    return epk + sodium.crypto_box(message, nonce, recipient_pk, esk)


def field_digest(
    name: str, category: str, ciphertext: bytes, sealed: bytes, commitment: bytes
) -> bytes:
    preimage = {
        "name": name,
        "category": category,
        "ciphertext_sha256": b64(hashlib.sha256(ciphertext).digest()),
        "sealed_key_sha256": b64(hashlib.sha256(sealed).digest()),
        "key_commitment": b64(commitment),
    }
    return hashlib.sha256(b"accord/envelope/v1/field-digest\n" + jcs(preimage)).digest()
