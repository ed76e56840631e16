"""Organizations (tenants), their public keys with rotation history, and their own rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sector: Mapped[str] = mapped_column(String(32))
    jurisdiction: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Availability, published in the directory. Never an address: a shelter's location
    # is itself survivor-endangering information (DESIGN.md section 6).
    accepting_referrals: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity: Mapped[int | None] = mapped_column(Integer)
    hours: Mapped[str] = mapped_column(String(32), default="business_hours")
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list)
    services: Mapped[list[str]] = mapped_column(JSONType, default=list)
    populations: Mapped[list[str]] = mapped_column(JSONType, default=list)
    availability_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Shown by name only to members of its collaborations and to oversight; to others
    # as a sector and an opaque id (service/organizations/visibility.py; migration 0180).
    confidential: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class OrganizationKey(Base):
    """A registered public key. Rotation retires the old row; it is never deleted, so
    envelopes signed or sealed before a rotation can still be checked."""

    __tablename__ = "organization_keys"
    __table_args__ = (UniqueConstraint("public_key"), UniqueConstraint("key_id"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "encryption" (X25519) | "signing" (Ed25519)
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(String(200))


class OrganizationPolicy(Base):
    """One version of an organization's own stricter rules (Cedar `forbid` statements only)."""

    __tablename__ = "organization_policies"
    __table_args__ = (UniqueConstraint("org_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    cedar_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class PrincipalStatus(Base):
    """An organization's decision about one of its principals (by token subject):
    written only by its admins, read on every authenticated request, so a
    deactivation holds on the very next request on every app node (issue 22)."""

    __tablename__ = "principal_status"
    __table_args__ = (UniqueConstraint("org_id", "subject"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    subject: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_by: Mapped[str] = mapped_column(String(255))


class PrincipalSighting(Base):
    """When a principal was last seen: bookkeeping of authentication, written at
    most once a minute per principal (`SIGHTING_GRANULARITY`), kept apart from the
    admins' decisions above so it never contends with them."""

    __tablename__ = "principal_sightings"
    __table_args__ = (UniqueConstraint("org_id", "subject"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    subject: Mapped[str] = mapped_column(String(255))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The `jti` of the token last seen, so an admin can revoke that one token.
    last_token_id: Mapped[str] = mapped_column(String(255))


class RevokedToken(Base):
    """A staff token revoked one by one (by its `jti`). Kept until every token that
    could carry the id has expired (`keep_until`), then swept."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (UniqueConstraint("org_id", "token_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    token_id: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str] = mapped_column(String(255))
    keep_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
