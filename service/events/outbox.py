"""Emit an event in the transaction of the change it reports (the outbox).

`emit` writes one row per receiving organization and one pending webhook delivery
per subscribed endpoint, in the caller's transaction: a change that rolls back
emits nothing, and a change that commits always has its events (DESIGN.md
guarantee 8).

Each organization's events are numbered 1, 2, 3, ... in the order their
transactions commit, from its row in `event_counters`, so that a feed reader who
has seen n has seen every number below it. On PostgreSQL the number is taken when
the transaction commits (migration 0240): `emit` writes the event and its
deliveries with a placeholder (the negation of a value from the sequence
`event_seq_placeholders`: unique, so no lock is needed), and a deferred trigger,
inside the COMMIT, takes the audit append queue, then the counter row, and sets the
number on the event and its deliveries. The counter row is held only while the
commit runs, not from the emit on; a rolled-back transaction consumes no number.
So nothing may read an event's number before its transaction commits; a caller
that must (the webhook test's reply) holds the append queue already (`lock_head`)
and passes `number_now`, which takes the counter row at once, as on SQLite, where
BEGIN IMMEDIATE serializes whole transactions anyway.

When a transaction that wrote deliveries commits, the dispatchers are woken (this
process's at once, other processes' by a NOTIFY on PostgreSQL: service/events/wake.py).

Every value in `data` is checked: a UUID, an RFC 3339 time, a code (lower-case
letters, digits, `._:-`), an integer, a boolean, null, or a list of those. Free
text cannot pass, so no event can carry a field value or a caseworker's note.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.ordering import queue_held
from service.events import wake
from service.events.catalog import EventType
from service.events.models import Event, EventCounter, WebhookDelivery, WebhookEndpoint

Scalar = str | int | bool | None
Value = Scalar | Sequence[Scalar]

_KEY: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CODE: Final = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(\+00:00|Z)")


class UnsafeEventDataError(ValueError):
    """A programming error: an event's data must hold identifiers and codes only."""


def _safe_scalar(value: object) -> bool:
    if value is None or isinstance(value, bool | int):
        return True
    if not isinstance(value, str):
        return False
    if _CODE.fullmatch(value) or _TIME.fullmatch(value):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def check_data(data: Mapping[str, Value]) -> dict[str, Value]:
    for key, value in data.items():
        if not _KEY.fullmatch(key):
            raise UnsafeEventDataError(f"event data key {key!r}")
        values = value if isinstance(value, list | tuple) else [value]
        if not all(_safe_scalar(v) for v in values):
            raise UnsafeEventDataError(f"event data value under {key!r} is not an identifier")
    return {k: list(v) if isinstance(v, list | tuple) else v for k, v in data.items()}


# Migration 0240: on PostgreSQL an event is written with the negation of one of
# these, and numbered at its commit.
_PLACEHOLDER: Final = -func.nextval("event_seq_placeholders")


async def _next_seq(session: AsyncSession, org_id: uuid.UUID, dialect: str) -> int:
    """The organization's next event number, in one statement (an upsert that
    returns it); its counter row stays locked until the transaction ends, so numbers
    follow the commit order."""
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(EventCounter).values(org_id=org_id, last_seq=1)
    statement = statement.on_conflict_do_update(
        index_elements=["org_id"], set_={"last_seq": EventCounter.last_seq + 1}
    ).returning(EventCounter.last_seq)
    result = await session.execute(statement)
    return int(result.scalar_one())


async def emit(
    session: AsyncSession,
    *,
    kind: EventType,
    to: Iterable[uuid.UUID],
    object_type: str,
    object_id: uuid.UUID,
    data: Mapping[str, Value],
    at: datetime,
    number_now: bool = False,
) -> list[uuid.UUID]:
    """Write the event for each organization in `to`; return the event ids.

    On PostgreSQL the events are numbered when the transaction commits, unless
    `number_now`, which needs the transaction to hold the append queue already
    (`lock_head`, which holds the policy lock exclusively)."""
    checked = check_data(data)
    orgs = sorted(set(to))
    if not orgs:
        return []
    dialect = session.sync_session.get_bind().dialect.name
    at_commit = dialect == "postgresql" and not number_now
    if dialect == "postgresql" and number_now and not queue_held(session):
        # A counter row before the queue would invert the lock order (migration 0240).
        raise RuntimeError("numbering events at once needs the append queue (lock_head)")
    rows: list[dict[str, object]] = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "type": kind.value,
            "at": at,
            "object_type": object_type,
            "object_id": object_id,
            "data": checked,
        }
        for org_id in orgs
    ]
    seqs: dict[uuid.UUID, int] = {}
    if at_commit:
        # One statement, no lock: placeholders now, numbers at the commit (0240).
        statement = (
            insert(Event)
            .values(seq=_PLACEHOLDER)
            .returning(Event.org_id, Event.seq, sort_by_parameter_order=True)
        )
        result = await session.execute(statement, rows)
        seqs = {row.org_id: row.seq for row in result}
    else:
        for org_id, row in zip(orgs, rows, strict=True):
            row["seq"] = seqs[org_id] = await _next_seq(session, org_id, dialect)
        await session.execute(insert(Event), rows)
    endpoints = (
        await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.org_id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.org_id.in_(orgs), WebhookEndpoint.deleted_at.is_(None)
            )
        )
    ).all()
    by_org = {row["org_id"]: row for row in rows}
    deliveries = [
        {
            "id": uuid.uuid4(),
            "event_id": by_org[org_id]["id"],
            # The event's number, or its placeholder until the commit numbers both.
            "event_seq": seqs[org_id],
            "endpoint_id": endpoint_id,
            "object_key": f"{object_type}:{object_id}",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "created_at": at,
        }
        for endpoint_id, org_id, types in endpoints
        if kind.value in types
    ]
    if deliveries:
        await session.execute(insert(WebhookDelivery), deliveries)
        # The dispatchers send them as soon as the transaction commits.
        await wake.announce(session, {e for e, _, types in endpoints if kind.value in types})
    return [row["id"] for row in rows]  # type: ignore[misc]
