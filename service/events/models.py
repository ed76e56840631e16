"""The outbox and the webhooks' tables (migration 0150).

`events` is the outbox: one row per event and receiving organization, written in
the transaction of the change it reports (service/events/outbox.py). `seq` numbers
each organization's events 1, 2, 3, ... from its row in `event_counters`, in the
order the writing transactions commit (on PostgreSQL a commit-time trigger sets it,
migration 0240; until then the row holds a negative placeholder): so a reader who
has seen n has seen everything before n, and no organization learns from gaps how
busy another is.

`webhook_endpoints` are an organization's receivers; their signing secrets are
stored sealed with a key from the service's key directory, so a copy of the
database alone does not reveal them. `webhook_deliveries` is one row per event
and endpoint, claimed by the dispatcher; `webhook_attempts` keeps each try's
status code for the endpoint's admin.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime

# SQLite's INTEGER PRIMARY KEY is its rowid.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class EventCounter(Base):
    """The last event number of one organization (locked while a number is taken)."""

    __tablename__ = "event_counters"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("org_id", "seq"),
        # Whether an overdue duty was announced: service/records_requests/overdue.py.
        Index("ix_events_object", "object_id", "type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the webhook-id
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    seq: Mapped[int] = mapped_column(BigInteger)  # the organization's own numbering
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[uuid.UUID] = mapped_column()
    # Identifiers, states, times, reason codes and organization ids only
    # (service/events/outbox.py checks every value).
    data: Mapped[dict[str, object]] = mapped_column(JSONType)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSONType)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a delivery exhausted its retries; cleared by the next success.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # During a rotation, the previous secret signs too until `previous_until`.
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_object", "endpoint_id", "object_key", "event_seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Indexed: the commit-time trigger numbers an event's deliveries by it (0240).
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"), index=True)
    # The event's number in its organization's feed: an endpoint belongs to one
    # organization, so this orders one object's deliveries to it.
    event_seq: Mapped[int] = mapped_column(BigInteger)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    # "<object_type>:<object_id>": one object's events reach an endpoint in order.
    object_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))  # pending, succeeded, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64))  # a code, never a body
    duration_ms: Mapped[int] = mapped_column(Integer)
