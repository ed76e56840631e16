"""Envelopes as the service stores them, back into the shapes a delivery needs:
the signed header from its stored JSON, and the sealed field rows (of a referral
or of a records request's answer) split into released and withheld."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from service.envelopes.format import (
    Envelope,
    EnvelopeContext,
    EnvelopeField,
    EnvelopeHeader,
    ManifestEntry,
    WithheldField,
)
from service.policy.decisions import Decision, PolicyRef, ReleasePermit

SHREDDED = PolicyRef(
    id="crypto-shredded",
    reason="The field's encrypted value was destroyed (withdrawal, revocation or retention)",
    source="engine",
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


def split_fields(
    rows: Sequence[Row], decision: Decision, permit: ReleasePermit
) -> tuple[list[Row], list[WithheldField]]:
    """Released rows (allowed and still holding bytes) and withheld fields with why."""
    by_name = {f.name: f for f in decision.fields}
    allowed = permit.field_names
    released: list[Row] = []
    withheld: list[WithheldField] = []
    for row in rows:
        if row.name in allowed and row.ciphertext is not None:
            released.append(row)
            continue
        refs = (SHREDDED,) if row.name in allowed else by_name[row.name].policies
        withheld.append(
            WithheldField(
                entry=manifest_entry(row),
                reasons=tuple(r.reason for r in refs),
                policies=tuple(r.id for r in refs),
            )
        )
    return released, withheld


def released_field(row: SealedRow) -> EnvelopeField:
    return EnvelopeField(
        name=row.name,
        category=row.category,
        ciphertext=row.ciphertext or b"",
        sealed_key=row.sealed_key or b"",
        key_commitment=row.key_commitment,
    )


def delivery_facts(
    released: Sequence[SealedRow], withheld: Sequence[WithheldField]
) -> dict[str, object]:
    """The release side of a delivery's audit entry: names, categories and the
    SHA-256 of each released ciphertext, the withheld fields with their policies.
    Never a value."""
    return {
        "released": [
            {"name": r.name, "category": r.category, "ciphertext_sha256": r.ciphertext_sha256.hex()}
            for r in released
        ],
        "categories": sorted({r.category for r in released}),
        "withheld": [
            {"name": w.entry.name, "category": w.entry.category, "policies": w.policies}
            for w in withheld
        ],
    }
