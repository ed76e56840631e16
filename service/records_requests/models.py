"""Records requests: what law enforcement or a prosecutor asked a holder for, the
holder's answer (a sealed envelope to the requester, or a refusal), the duties a
release creates (notify the survivor; review an emergency release).

A request row holds metadata and the requester's justification, which the holder
must read to answer (it is never logged or audited: the audit entry records only
that one was given). An answer's fields are stored like a referral's: the manifest
entry for good, the ciphertext and sealed key until they are shredded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime
from service.envelopes.stored import SealedFieldColumns


class RequestStatus(StrEnum):
    open = "open"
    released = "released"
    refused = "refused"
    # A released answer never delivered within the abandonment time
    # (service/records_requests/expiry.py).
    expired = "expired"


class LegalBasis(StrEnum):
    consent = "consent"
    court_order = "court_order"
    subpoena = "subpoena"
    mandated_report = "mandated_report"
    emergency = "emergency"


class RecordsRequest(Base):
    __tablename__ = "records_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    requester_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    holder_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    # A reference the holder shared (a referral id, its own case number); never a name.
    subject_ref: Mapped[str] = mapped_column(String(200))
    categories: Mapped[list[str]] = mapped_column(JSONType)
    purpose: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str] = mapped_column(String(32))
    legal_reference: Mapped[str | None] = mapped_column(String(500))
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    justification: Mapped[str] = mapped_column(Text)
    preliminary: Mapped[list[dict[str, object]]] = mapped_column(JSONType)
    policy_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responded_by: Mapped[str | None] = mapped_column(String(200))
    responder_roles: Mapped[list[str] | None] = mapped_column(JSONType)
    response_note: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("subjects.id"))
    consent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent_versions.id"))
    envelope_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    envelope_header: Mapped[dict[str, object] | None] = mapped_column(JSONType)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecordsRequestField(SealedFieldColumns, Base):
    __tablename__ = "records_request_fields"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("records_requests.id"), index=True)


class Obligation(Base):
    """A duty a compelled release created for the holder: notify the survivor by
    `due_at`. Listed until marked done with how and when."""

    __tablename__ = "obligations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    holder_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("records_requests.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_how: Mapped[str | None] = mapped_column(String(32))
    done_recorded_by: Mapped[str | None] = mapped_column(String(200))


class Review(Base):
    """An emergency release awaiting a finding by a supervisor of the holder other
    than the one who released."""

    __tablename__ = "reviews"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    holder_org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("records_requests.id"), index=True)
    released_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[str | None] = mapped_column(String(200))
    finding: Mapped[str | None] = mapped_column(String(32))
    survivor_notified: Mapped[bool | None] = mapped_column(Boolean)
    # Why the survivor was not told (it would endanger them): kept for the holder,
    # never logged or audited.
    reason_not_notified: Mapped[str | None] = mapped_column(Text)
