"""Public keys for tests (generated; no fixed secrets)."""

from __future__ import annotations

import base64

import nacl.public
import nacl.signing


def org_public_keys() -> dict[str, str]:
    enc = bytes(nacl.public.PrivateKey.generate().public_key)
    sig = bytes(nacl.signing.SigningKey.generate().verify_key)
    return {
        "encryption_public_key": base64.b64encode(enc).decode(),
        "signing_public_key": base64.b64encode(sig).decode(),
    }
