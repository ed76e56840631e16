"""Collaborations (task forces, coalitions) bound by versioned data-sharing agreements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime


class Collaboration(Base):
    __tablename__ = "collaborations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))


class AgreementVersion(Base):
    """Immutable: changing an agreement writes a new version and keeps the old one."""

    __tablename__ = "agreement_versions"
    __table_args__ = (UniqueConstraint("collaboration_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    collaboration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collaborations.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flows: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    effective_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    document_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    # Signed agreements (migration 0210): the member organizations when it was
    # proposed (sorted ids) and the version's hash, SHA-256 of its canonical signed
    # bytes (accord_client.agreements), chained to the previous version's. NULL on
    # versions written before 0210: nobody can sign those, so they never bind.
    members: Mapped[list[str] | None] = mapped_column(JSONType)
    sha256: Mapped[str | None] = mapped_column(String(64))
    previous_sha256: Mapped[str | None] = mapped_column(String(64))


class Membership(Base):
    """One period of membership. Removal sets removed_at; re-adding opens a new period."""

    __tablename__ = "collaboration_members"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    collaboration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collaborations.id"), index=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    added_by: Mapped[str] = mapped_column(String(200))
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_by: Mapped[str | None] = mapped_column(String(200))


class AgreementSignature(Base):
    """One organization's countersignature of one agreement version (issue 24,
    docs/agreements.md): Ed25519 by the organization's registered signing key over
    the version's canonical bytes (accord_client.agreements). Never deleted: a
    withdrawal sets `withdrawn_at`, and the flows end for every later release."""

    __tablename__ = "agreement_signatures"
    __table_args__ = (UniqueConstraint("agreement_version_id", "org_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    collaboration_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collaborations.id"), index=True)
    agreement_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreement_versions.id"))
    version: Mapped[int] = mapped_column(Integer)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signed_by: Mapped[str] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_by: Mapped[str | None] = mapped_column(String(200))
