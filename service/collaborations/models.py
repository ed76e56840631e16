"""Collaborations (task forces, coalitions) bound by versioned data-sharing agreements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
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
