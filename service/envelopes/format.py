"""Canonical bytes of envelopes and the shape of a delivery.

The encoding itself is the client library's pure module, re-exported so the
service and every client compute byte-identical AD, digests, signed bytes and
envelope ids (docs/envelope.md; pinned by tests/vectors/envelope.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord_client.envelope_format import (
    MAX_CIPHERTEXT_BYTES,
    MAX_ENVELOPE_JSON_BYTES,
    MAX_FIELDS,
    MAX_NAME_LENGTH,
    MAX_TOTAL_CIPHERTEXT_BYTES,
    VERSION,
    Envelope,
    EnvelopeContext,
    EnvelopeField,
    EnvelopeHeader,
    ManifestEntry,
    canonical_json,
    envelope_id,
    field_ad,
    field_digest,
    signed_bytes,
)
from accord_client.strict_json import StrictJSONError, loads_strict

from service.crypto import b64encode

__all__ = [
    "MAX_CIPHERTEXT_BYTES",
    "MAX_ENVELOPE_JSON_BYTES",
    "MAX_FIELDS",
    "MAX_NAME_LENGTH",
    "MAX_TOTAL_CIPHERTEXT_BYTES",
    "VERSION",
    "Envelope",
    "EnvelopeContext",
    "EnvelopeField",
    "EnvelopeHeader",
    "ManifestEntry",
    "StrictJSONError",
    "WithheldField",
    "build_delivery",
    "canonical_json",
    "envelope_id",
    "field_ad",
    "field_digest",
    "loads_strict",
    "signed_bytes",
    "withheld_entry",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class WithheldField:
    """A field the policy engine withheld at delivery, with why."""

    entry: ManifestEntry
    reasons: tuple[str, ...]
    policies: tuple[str, ...]


def withheld_entry(field: WithheldField) -> dict[str, object]:
    """A withheld field as delivered: its digest and the non-secret parts of its
    preimage (so the recipient can check the name and category it is told, and
    the signature), never its ciphertext or sealed key."""
    entry = field.entry
    return {
        **entry.digest_preimage(),
        "digest": b64encode(entry.digest()),
        "reasons": list(field.reasons),
        "policies": list(field.policies),
    }


def build_delivery(
    *,
    header: EnvelopeHeader,
    signature: bytes,
    released: Sequence[EnvelopeField],
    withheld: Sequence[WithheldField],
    disclosure_seq: int,
) -> dict[str, object]:
    """The body of a deliver response (API.md): the one place ciphertext leaves.

    `released` and `withheld` together must be exactly the envelope's fields
    (the recipient's signature check fails otherwise); they are emitted in the
    format's canonical name order.
    """
    names = [f.name for f in released] + [w.entry.name for w in withheld]
    if len(set(names)) != len(names):
        raise ValueError("a field is either released or withheld, once")
    return {
        "envelope_header": header.to_json(),
        "released": [f.to_json() for f in sorted(released, key=lambda f: f.name)],
        "withheld": [withheld_entry(w) for w in sorted(withheld, key=lambda w: w.entry.name)],
        "signature": b64encode(signature),
        "sender_key_id": header.sender_key_id,
        "disclosure_seq": disclosure_seq,
    }
