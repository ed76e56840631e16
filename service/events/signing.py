"""Webhook signatures per the Standard Webhooks specification.

Headers: `webhook-id` (the event's id, the same on every attempt), `webhook-timestamp`
(integer Unix seconds of this attempt) and `webhook-signature`, a space-separated
list of `version,base64(signature)` over the signed content
`{webhook-id}.{webhook-timestamp}.{body}`:

- `v1`: HMAC-SHA256 with the endpoint's secret (shown once as `whsec_` + base64 of
  its bytes). During a rotation both the new and the previous secret sign.
- `v1a`: Ed25519 with the service's own webhook key, published as `whpk_` + base64
  at GET /v1/webhooks/signing-key, so a receiver can verify with no shared secret.

Any Standard Webhooks library verifies `v1`; `v1a` is checked by the client library
(accord_client) and by any Ed25519 implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

from service.crypto import Signer

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
PUBLIC_KEY_PREFIX: Final = "whpk_"
SECRET_BYTES: Final = 32


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def format_secret(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def format_public_key(raw: bytes) -> str:
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def headers(
    msg_id: str, timestamp: int, body: bytes, *, secrets: Sequence[bytes], signer: Signer
) -> dict[str, str]:
    """The three headers of one attempt."""
    content = signed_content(msg_id, timestamp, body)
    signatures = [
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")
        for key in secrets
    ]
    signatures.append("v1a," + base64.b64encode(signer.sign(content)).decode("ascii"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
