"""Duties past their date: `obligation.overdue` and `review.overdue` events.

A compelled release's duty to tell the survivor and an emergency release's review
are announced when they open (`obligation.due`, `review.due`:
service/records_requests/duties.py). Nothing changes in the database when their
date passes, so a periodic scan announces each overdue one once, to the holder.
Each is announced in a transaction of its own that first locks its row, so two
application nodes scanning at once announce it once, and each transaction takes
one organization's event counter at most (no lock-order question arises).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import Exists, exists, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from service.clock import Clock
from service.events.catalog import EventType
from service.events.models import Event
from service.records_requests.duties import announce_obligation, announce_review
from service.records_requests.models import Obligation, Review

log = logging.getLogger("accord.duties")


def _announced(kind: EventType, column: InstrumentedAttribute[uuid.UUID]) -> Exists:
    return exists().where(Event.type == kind.value, Event.object_id == column)


async def _due_ids(session: AsyncSession, now: datetime) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    obligations = (
        await session.scalars(
            select(Obligation.id).where(
                Obligation.done_at.is_(None),
                Obligation.due_at <= now,
                ~_announced(EventType.obligation_overdue, Obligation.id),
            )
        )
    ).all()
    reviews = (
        await session.scalars(
            select(Review.id).where(
                Review.closed_at.is_(None),
                Review.due_at <= now,
                ~_announced(EventType.review_overdue, Review.id),
            )
        )
    ).all()
    return list(obligations), list(reviews)


async def announce_overdue(factory: async_sessionmaker[AsyncSession], *, clock: Clock) -> int:
    """Announce every overdue, unannounced duty; return how many were announced."""
    now = clock.now()
    async with factory() as session:
        obligation_ids, review_ids = await _due_ids(session, now)
    count = 0
    for obligation_id in obligation_ids:
        async with factory() as session, session.begin():
            duty = (
                await session.scalars(
                    select(Obligation).where(Obligation.id == obligation_id).with_for_update()
                )
            ).one()
            if duty.done_at is None and not await _was_announced(
                session, EventType.obligation_overdue, duty.id
            ):
                await announce_obligation(session, duty, EventType.obligation_overdue, now)
                count += 1
    for review_id in review_ids:
        async with factory() as session, session.begin():
            review = (
                await session.scalars(
                    select(Review).where(Review.id == review_id).with_for_update()
                )
            ).one()
            if review.closed_at is None and not await _was_announced(
                session, EventType.review_overdue, review.id
            ):
                await announce_review(session, review, EventType.review_overdue, now)
                count += 1
    return count


async def _was_announced(session: AsyncSession, kind: EventType, object_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Event.id).where(Event.type == kind.value, Event.object_id == object_id).limit(1)
    )
    return found is not None


async def overdue_loop(
    factory: async_sessionmaker[AsyncSession], *, clock: Clock, interval: float
) -> None:
    """The periodic scan of a running service."""
    while True:
        await asyncio.sleep(interval)
        try:
            count = await announce_overdue(factory, clock=clock)
        except (IntegrityError, OperationalError) as exc:
            log.warning(
                "overdue scan failed; retried at the next interval",
                extra={"event": "overdue_scan_failed", "error_type": type(exc).__name__},
            )
            continue
        if count:
            log.info("overdue duties announced", extra={"event": "overdue", "count": count})
