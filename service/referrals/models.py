"""Referrals: metadata, the sealed fields, and an append-only timeline.

A referral row holds metadata only (who, to whom, about which subject pseudonym,
on which consent, its state). Each field is a `ReferralField`: its manifest entry
(name, category, SHA-256 of ciphertext and of sealed key, key commitment) is kept
for good, so a field can still be delivered as withheld and audited after its
secret parts are gone; `ciphertext` and `sealed_key` are the only columns that
hold what the sender encrypted, and crypto-shredding sets both to NULL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime
from service.envelopes.stored import SealedFieldColumns


class ReferralStatus(StrEnum):
    sent = "sent"
    delivered = "delivered"
    accepted = "accepted"
    declined = "declined"
    closed = "closed"
    withdrawn = "withdrawn"
    # Never delivered within the abandonment time (service/referrals/expiry.py).
    expired = "expired"


class DeclineReason(StrEnum):
    no_capacity = "no_capacity"
    not_eligible = "not_eligible"
    cannot_reach = "cannot_reach"
    survivor_declined = "survivor_declined"
    other = "other"


class Urgency(StrEnum):
    routine = "routine"
    urgent = "urgent"
    emergency = "emergency"


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("sender_org_id", "idempotency_key"),
        # The sent and received boxes, newest first, a page at a time (migration 0140):
        # each page reads its rows from the index instead of sorting the box.
        Index("ix_referrals_sender_box", "sender_org_id", "created_at", "id"),
        Index("ix_referrals_recipient_box", "recipient_org_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sender_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    recipient_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"), index=True)
    consent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consent_versions.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    services_requested: Mapped[list[str]] = mapped_column(JSONType)
    urgency: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # SHA-256 (hex) of the envelope's canonical JSON: the same envelope is never
    # accepted twice, whichever referral it arrives with (API.md security rules).
    envelope_id: Mapped[str] = mapped_column(String(64), unique=True)
    envelope_header: Mapped[dict[str, object]] = mapped_column(JSONType)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    # The sender's roles when it sent: the release is made on their authority.
    sender_roles: Mapped[list[str]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A retried create with the same key returns the first referral (never a second).
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    decline_reason: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(64))
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    shred_reason: Mapped[str | None] = mapped_column(String(32))


class ReferralField(SealedFieldColumns, Base):
    __tablename__ = "referral_fields"
    __table_args__ = (UniqueConstraint("referral_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)


class ReferralEvent(Base):
    """The timeline both parties see: every state change, timestamped. Free text a
    party writes (a decline note) is not kept here; reasons and outcomes are codes."""

    __tablename__ = "referral_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("referrals.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    detail: Mapped[str | None] = mapped_column(Text)
    audit_seq: Mapped[int | None] = mapped_column(Integer)
