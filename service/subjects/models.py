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
    # Erasure (service/subjects/erasure.py, docs/erasure.md): once set, nothing new
    # is created for the subject; the reason is a code (ErasureReason), never text.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    erased_by: Mapped[str | None] = mapped_column(String(200), default=None)
    erase_reason: Mapped[str | None] = mapped_column(String(32), default=None)


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


class AccessLink(Base):
    """A survivor access link (issue 20): a bearer token for the API, and a
    single-use code that the survivor's browser exchanges once for a session.

    Only SHA-256 hashes of the code and of the session secret are stored (both are
    random, 128 and 256 bits, so a plain hash suffices); a copy of the database
    opens no session. The token's `jti` is `id.hex`. Nothing here is survivor data.
    Revocation ends the token and the session on their next request."""

    __tablename__ = "access_links"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id"), index=True)
    owner_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    code_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    session_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200))
