"""The test vector of docs/agreements.md, checked with the independent encoder in
tests/collaborations/jcs.py and `cryptography`, and against the client library."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from accord_client import agreements
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.collaborations import jcs

DOC = (Path(__file__).parents[2] / "docs" / "agreements.md").read_text(encoding="utf-8")


def _after(label: str) -> str:
    match = re.search(re.escape(label) + r"[^`]*`([0-9a-f]+)`", DOC)
    assert match, label
    return match.group(1)


def test_the_documented_vector_holds() -> None:
    section = DOC.split("### Test vector", 1)[1]
    block = section.split("```", 2)[1].strip("\n")
    label, json_line = block.split("\n")
    seed = bytes.fromhex(_after("Seed (Ed25519 private key, hex):"))
    public = bytes.fromhex(_after("Public key (hex):"))
    digest = _after("the version's `sha256`:")
    signature = bytes.fromhex(_after("Signature (hex):"))
    item = {
        "version": 2,
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": "law_enforcement",
                "purposes": ["investigation"],
                "categories": ["identity", "contact"],
            }
        ],
        "effective_from": "2026-12-01T00:00:00+00:00",
        "effective_to": None,
        "document_sha256": hashlib.sha256(b"task force mou").hexdigest(),
        "members": ["00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000a"],
        "previous_sha256": "ab" * 32,
    }
    ours = jcs.message("00000000-0000-4000-8000-000000000001", item)
    assert ours == (label + "\n" + json_line).encode("utf-8")
    assert label.encode() == jcs.LABEL
    assert jcs.sha256_hex(ours) == digest
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == public
    assert key.sign(ours) == signature  # Ed25519 is deterministic
    assert jcs.verifies(public, ours, signature)
    assert not jcs.verifies(public, ours.replace(b'"version":2', b'"version":3'), signature)
    # The client library produces the same bytes and signature.
    document = agreements.agreement_document(
        collaboration_id="00000000-0000-4000-8000-000000000001",
        version=2,
        flows=item["flows"],
        effective_from="2026-12-01T00:00:00.000000Z",
        effective_to=None,
        document_sha256=item["document_sha256"],
        members=item["members"],
        previous_sha256="ab" * 32,
    )
    assert agreements.signed_bytes(document) == ours
    assert agreements.version_sha256(document) == digest
    assert agreements.sign(seed, document) == signature
