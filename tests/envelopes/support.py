"""Helpers for envelope tests: parties with real keys, sealing, opening, re-signing."""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord_client import keys as client_keys
from accord_client.envelope import (
    OpenedEnvelope,
    PlainField,
    open_delivery,
    open_envelope,
    seal_envelope,
)
from accord_client.envelope_format import EnvelopeHeader
from accord_client.envelope_parse import parse_envelope_obj

SUBJECT = "3f1d6a52-94a4-4a8e-8f0e-2b7f6d0c1a11"
CONSENT = "7c0e9b1e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
PURPOSE = "services_referral"

DEFAULT_FIELDS = (
    PlainField(name="full_name", category="identity", value="Ana María Pérez"),
    PlainField(name="phone", category="contact", value="+1 555 0100"),
    PlainField(
        name="safety_notes", category="safety_plan", value="CANARY-7f3a safe word: lighthouse"
    ),
)


@dataclass(frozen=True)
class Party:
    keys: client_keys.OrganizationKeys

    @property
    def org(self) -> str:
        return self.keys.org_id

    @property
    def seed(self) -> bytes:
        return self.keys.current_signing_key.seed

    @property
    def verify_key(self) -> bytes:
        return self.keys.current_signing_key.public_key

    @property
    def enc_public(self) -> bytes:
        return self.keys.current_encryption_key.public_key

    @property
    def enc_private(self) -> bytes:
        return self.keys.current_encryption_key.private_key

    @property
    def enc_key_id(self) -> str:
        return self.keys.current_encryption_key.key_id


def new_party() -> Party:
    return Party(client_keys.generate_organization_keys(str(uuid.uuid4())))


def seal(
    sender: Party,
    recipient: Party,
    fields: tuple[PlainField, ...] = DEFAULT_FIELDS,
    *,
    subject: str = SUBJECT,
    purpose: str = PURPOSE,
    consent: str | None = CONSENT,
) -> dict[str, Any]:
    return seal_envelope(
        fields,
        sender_org=sender.org,
        sender_signing_key=sender.seed,
        recipient_org=recipient.org,
        recipient_encryption_key=recipient.enc_public,
        subject_id=subject,
        purpose=purpose,
        consent_id=consent,
    )


def open_as(recipient: Party, sender: Party, envelope: Any) -> dict[str, str]:
    """Open the way a careful recipient does: sender key and org from the directory.
    Returns the released values (the header is checked by the tests that need it)."""
    return dict(open_full(recipient, sender, envelope).values)


def open_full(recipient: Party, sender: Party, envelope: Any) -> OpenedEnvelope:
    return open_envelope(
        envelope,
        recipient_private_key=recipient.enc_private,
        sender_signing_key=sender.verify_key,
        expected_sender_org=sender.org,
        expected_recipient_org=recipient.org,
    )


def open_delivery_as(recipient: Party, sender: Party, delivery: Any) -> dict[str, str]:
    return dict(open_delivery_full(recipient, sender, delivery).values)


def open_delivery_full(recipient: Party, sender: Party, delivery: Any) -> OpenedEnvelope:
    return open_delivery(
        delivery,
        recipient_private_key=recipient.enc_private,
        sender_signing_key=sender.verify_key,
        expected_sender_org=sender.org,
        expected_recipient_org=recipient.org,
    )


def resign(envelope: Mapping[str, Any], signer: Party) -> dict[str, Any]:
    """Sign a (tampered) envelope again with `signer`'s key: models a sender who
    is malicious, or a signature check that was bypassed, so the AEAD and key
    commitment checks underneath can be tested on their own."""
    from accord_client.crypto import sign_ed25519

    doc = copy.deepcopy(dict(envelope))
    doc["signature"] = base64.b64encode(b"\0" * 64).decode()
    parsed, problems = parse_envelope_obj(doc)
    assert parsed is not None, problems
    doc["signature"] = base64.b64encode(sign_ed25519(signer.seed, parsed.signed_bytes())).decode()
    return doc


def header_of(envelope: Mapping[str, Any]) -> EnvelopeHeader:
    parsed, problems = parse_envelope_obj(envelope)
    assert parsed is not None, problems
    return parsed.header


def flip_bit(b64_text: str, byte_index: int, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64_text))
    raw[byte_index] ^= 1 << bit
    return base64.b64encode(bytes(raw)).decode()
