"""Envelopes as the service stores them, back into the shapes a delivery needs:
the signed header from its stored JSON, and the sealed field rows (of a referral
or of a records request's answer) split into released and withheld."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import UTCDateTime
from service.envelopes.format import (
    Envelope,
    EnvelopeContext,
    EnvelopeHeader,
    ManifestEntry,
)


class SealedRow(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def ciphertext_sha256(self) -> bytes: ...
    @property
    def sealed_key_sha256(self) -> bytes: ...
    @property
    def key_commitment(self) -> bytes: ...
    @property
    def ciphertext(self) -> bytes | None: ...
    @property
    def sealed_key(self) -> bytes | None: ...


Row = TypeVar("Row", bound=SealedRow)


@dataclass(frozen=True, slots=True)
class StoredField:
    """A sealed field as a delivery reads it (plain values, not an ORM object)."""

    name: str
    category: str
    ciphertext_sha256: bytes
    sealed_key_sha256: bytes
    key_commitment: bytes
    ciphertext: bytes | None
    sealed_key: bytes | None
    released_at: datetime | None


def sealed_columns(envelope: Envelope) -> list[dict[str, object]]:
    """The stored columns of each field of an accepted envelope (its manifest entry
    and its secret parts), for the field rows of a referral or a records request."""
    return [
        {
            "name": f.name,
            "category": f.category,
            "ciphertext_sha256": entry.ciphertext_sha256,
            "sealed_key_sha256": entry.sealed_key_sha256,
            "key_commitment": f.key_commitment,
            "ciphertext": f.ciphertext,
            "sealed_key": f.sealed_key,
        }
        for f, entry in zip(envelope.fields, envelope.manifest(), strict=True)
    ]


def header_from_json(raw: Mapping[str, object]) -> EnvelopeHeader:
    context = raw["context"]
    assert isinstance(context, dict)  # noqa: S101 - written by the service from a parsed header
    return EnvelopeHeader(
        version=int(str(raw["version"])),
        sender_org=str(raw["sender_org"]),
        sender_key_id=str(raw["sender_key_id"]),
        recipient_org=str(raw["recipient_org"]),
        recipient_key_id=str(raw["recipient_key_id"]),
        context=EnvelopeContext(
            subject_id=str(context["subject_id"]),
            purpose=str(context["purpose"]),
            consent_id=None if context["consent_id"] is None else str(context["consent_id"]),
            request_id=None if context["request_id"] is None else str(context["request_id"]),
        ),
    )


def manifest_entry(row: SealedRow) -> ManifestEntry:
    return ManifestEntry(
        name=row.name,
        category=row.category,
        ciphertext_sha256=row.ciphertext_sha256,
        sealed_key_sha256=row.sealed_key_sha256,
        key_commitment=row.key_commitment,
    )


class SealedFieldColumns:
    """The columns of a stored sealed field (a referral's or a records request's
    answer): its manifest entry (name, category, SHA-256 of ciphertext and of sealed
    key, key commitment), kept for good so the field can still be listed as withheld
    and audited; when it was first released; and the secret parts, `ciphertext` and
    `sealed_key`, the only columns holding what the sender encrypted, set to NULL by
    crypto-shredding."""

    name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    ciphertext_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_key_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    key_commitment: Mapped[bytes] = mapped_column(LargeBinary)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_key: Mapped[bytes | None] = mapped_column(LargeBinary)
