"""The vectors' sealed keys from their ephemeral seeds, following docs/envelope.md
("Worked example") step by step (SECURITY-TESTS E11: the vectors pin the sealed
data key under the commitment; issue 22 item 16).

Independent of the vector builder (which calls crypto_box_seed_keypair and
crypto_box_seal's construction directly) and of the production code: the key pair
comes from SHA-512 and the X25519 base-point multiplication as the document says,
and the box from crypto_box; nothing here imports accord_client or service."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "tests/vectors/envelope.json").read_text("utf-8"))
SPEC = (ROOT / "docs/envelope.md").read_text("utf-8")
FIELDS = VECTORS["fields"]


def ephemeral_pair(seed: bytes) -> tuple[bytes, bytes]:
    """docs/envelope.md steps 1 and 2: (esk, epk) from the seed."""
    esk = hashlib.sha512(seed).digest()[:32]
    return esk, sodium.crypto_scalarmult_base(esk)


def sealed_key(data_key: bytes, recipient_pk: bytes, seed: bytes) -> bytes:
    """docs/envelope.md step 3."""
    esk, epk = ephemeral_pair(seed)
    nonce = hashlib.blake2b(epk + recipient_pk, digest_size=24).digest()
    return epk + sodium.crypto_box(data_key, nonce, recipient_pk, esk)


def test_E11_the_spec_states_the_derivation() -> None:
    for step in ("crypto_box_seed_keypair", "SHA-512(`ephemeral_seed`)", "crypto_scalarmult_base"):
        assert step in SPEC, step


@pytest.mark.parametrize("field", FIELDS, ids=[f["name"] for f in FIELDS])
def test_E11_each_sealed_key_follows_from_its_ephemeral_seed(field: dict[str, Any]) -> None:
    recipient_pk = bytes.fromhex(VECTORS["recipient"]["x25519_public_key_hex"])
    recipient_sk = bytes.fromhex(VECTORS["recipient"]["x25519_private_key_hex"])
    seed = bytes.fromhex(field["ephemeral_seed_hex"])
    data_key = bytes.fromhex(field["data_key_hex"])
    expected = bytes.fromhex(field["sealed_key_hex"])

    _, epk = ephemeral_pair(seed)
    assert expected[:32] == epk  # the sealed key starts with the ephemeral public key
    assert sealed_key(data_key, recipient_pk, seed) == expected
    assert len(expected) == 80
    # And it is an ordinary sealed box: the recipient opens it with libsodium.
    assert sodium.crypto_box_seal_open(expected, recipient_pk, recipient_sk) == data_key
    # The same pair as libsodium's own derivation, which the document names.
    assert sodium.crypto_box_seed_keypair(seed)[0] == epk
