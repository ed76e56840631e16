"""Subjects: survivors known only by a random id owned by the serving organization.
No name, no birth date, nothing identifying is stored."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, UTCDateTime


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    is_minor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))


class AccountingSuspension(Base):
    """A law enforcement agency's written request (document hash) that the
    disclosures of one records request be left out of the survivor's accounting
    until `until` (the HIPAA 164.528(a)(2) model). It ends by itself: the
    accounting shows them again from `until` on, with no job."""

    __tablename__ = "accounting_suspensions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("records_requests.id"), index=True)
    requester_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    document_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(UTCDateTime())
