"""Consent grants: immutable versions and irreversible revocations.

A grant is a lineage of versions (`grant_id` is the id of its first version);
amending writes a new version that supersedes the previous one. Nothing is ever
updated or deleted: the database refuses it (triggers created by the migration).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime


class ConsentVersion(Base):
    __tablename__ = "consent_versions"
    __table_args__ = (UniqueConstraint("grant_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(Integer)
    supersedes: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent_versions.id"))
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"), index=True)
    owner_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    recipients: Mapped[list[str]] = mapped_column(JSONType)
    purposes: Mapped[list[str]] = mapped_column(JSONType)
    categories: Mapped[list[str]] = mapped_column(JSONType)
    fields: Mapped[list[str] | None] = mapped_column(JSONType)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(35))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    witness_role: Mapped[str | None] = mapped_column(String(32))
    given_by: Mapped[str] = mapped_column(String(32))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRevocation(Base):
    """One per grant: revocation cannot be undone (a new grant is needed)."""

    __tablename__ = "consent_revocations"

    grant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str] = mapped_column(String(200))
    # Stored for the owner's records; never logged, never in an audit entry.
    reason: Mapped[str] = mapped_column(Text)


class ConsentNotification(Base):
    """Outbox: an organization that already received data under a grant learns of
    its withdrawal (a later issue turns these rows into webhooks)."""

    __tablename__ = "consent_notifications"
    __table_args__ = (UniqueConstraint("grant_id", "recipient_org_id", "event"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    recipient_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConsentReview(Base):
    """A grant flagged `needs_review`: an agreement it relied on was narrowed."""

    __tablename__ = "consent_reviews"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(index=True)
    owner_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    collaboration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collaborations.id"))
    agreement_version: Mapped[int] = mapped_column(Integer)
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentGiver(Base):
    """Who gave a version, as an opaque reference the organization computes (a keyed
    hash it keeps; the server only compares references, it never sees a person)."""

    __tablename__ = "consent_givers"

    consent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consent_versions.id"), primary_key=True
    )
    giver_ref: Mapped[str] = mapped_column(String(64))


class AllegedAbuser(Base):
    """A person recorded as the subject's alleged abuser (same opaque reference as
    `ConsentGiver.giver_ref`): never accepted as the giver of consent for this subject,
    and any grant they gave stops counting at once. Immutable, like consent versions."""

    __tablename__ = "alleged_abusers"
    __table_args__ = (UniqueConstraint("subject_id", "person_ref"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"), index=True)
    person_ref: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
