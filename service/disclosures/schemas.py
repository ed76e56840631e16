"""The body of a delivery, referral or records request alike (API.md "Referrals":
POST .../deliver): the released fields, the withheld ones as digests with their
reasons and policies, the sender's signature and key id, the entry's number."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ReleasedField(BaseModel):
    name: str
    category: str
    ciphertext: str
    sealed_key: str
    key_commitment: str


class WithheldFieldRead(BaseModel):
    name: str
    category: str
    ciphertext_sha256: str
    sealed_key_sha256: str
    key_commitment: str
    digest: str
    reasons: list[str]
    policies: list[str]


class DeliveryRead(BaseModel):
    """What the recipient's client opens (accord_client.envelope.open_delivery). It
    must verify the signature with the sender's key looked up by `sender_key_id` in
    the directory, never with a key carried here."""

    envelope_header: dict[str, Any]
    released: list[ReleasedField]
    withheld: list[WithheldFieldRead]
    signature: str
    sender_key_id: str
    disclosure_seq: int
