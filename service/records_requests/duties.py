"""The duties a release creates for the holder (DESIGN.md sections 3 and 6):

- a compelled release (court order, subpoena) obliges the holder to tell the
  survivor by a deadline (`ACCORD_OBLIGATION_NOTIFY_DAYS`, default 5) counted
  from the first delivery that releases anything (the disclosure itself); the
  obligation is listed until marked done with how and when; an overdue one is
  visible to the holder's auditors;
- an emergency release enters the review queue: a supervisor of the holder other
  than the one who released must close it with a finding within
  `ACCORD_REVIEW_DUE_HOURS` (default 72), recording whether the survivor was told
  and, if not, why (telling them would endanger them).

Free text (why the survivor was not told) is kept for the holder, never audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.audit.ordering import lock_policy
from service.audit.service import sees_everything
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProblemItem,
    RuleViolationError,
)
from service.events.catalog import EventType
from service.events.outbox import emit
from service.records_requests.models import Obligation, RecordsRequest, Review
from service.records_requests.schemas import ObligationDone, ReviewClose

NOTIFY_SURVIVOR: Final = "notify_survivor"
FLAG_FOR_REVIEW: Final = "flag_for_review"
HOLDER_STAFF: Final = (Role.caseworker, Role.supervisor, Role.org_admin)


async def open_review(
    session: AsyncSession,
    *,
    request: RecordsRequest,
    principal: Principal,
    obligations: set[str],
    clock: Clock,
    review_within: timedelta,
) -> None:
    """Called in the answer's transaction: the supervisor's emergency release enters
    the review queue at once, before the requester even delivers it."""
    if FLAG_FOR_REVIEW not in obligations:
        return
    now = clock.now()
    review = Review(
        id=uuid.uuid4(),
        holder_org_id=request.holder_org_id,
        request_id=request.id,
        released_by=principal.label,
        created_at=now,
        due_at=now + review_within,
    )
    session.add(review)
    await _audit(session, principal, "review.opened", request, review.id, clock)
    await session.flush()
    await announce_review(session, review, EventType.review_due, now)


def notifies_survivor(compelled: bool, obligations: set[str]) -> bool:
    """A compelled release (court order, subpoena) obliges the holder to tell the
    survivor; an emergency's notification is decided when its review closes."""
    return compelled or (NOTIFY_SURVIVOR in obligations and FLAG_FOR_REVIEW not in obligations)


async def open_notification(
    session: AsyncSession,
    *,
    request: RecordsRequest,
    principal: Principal,
    clock: Clock,
    notify_within: timedelta,
) -> None:
    """Called in the transaction of the first delivery that releases anything: the
    disclosure has happened, so the holder's duty to tell the survivor starts now.
    The audit entry names the delivering requester as actor and the holder as
    counterpart, so both organizations' auditors see it."""
    now = clock.now()
    duty = Obligation(
        id=uuid.uuid4(),
        holder_org_id=request.holder_org_id,
        request_id=request.id,
        kind=NOTIFY_SURVIVOR,
        created_at=now,
        due_at=now + notify_within,
    )
    session.add(duty)
    await _audit(
        session,
        principal,
        "obligation.created",
        request,
        duty.id,
        clock,
        holder_org=str(request.holder_org_id),
        kind=NOTIFY_SURVIVOR,
        due_at=duty.due_at.isoformat(),
    )
    await session.flush()
    await announce_obligation(session, duty, EventType.obligation_due, now)


async def announce_obligation(
    session: AsyncSession, duty: Obligation, kind: EventType, at: datetime
) -> None:
    """Tell the holder that a duty is due by a date, or overdue (service/events)."""
    await emit(
        session,
        kind=kind,
        to=[duty.holder_org_id],
        object_type="obligation",
        object_id=duty.id,
        data={
            "obligation_id": str(duty.id),
            "request_id": str(duty.request_id),
            "kind": duty.kind,
            "due_at": duty.due_at.isoformat(),
        },
        at=at,
    )


async def announce_review(
    session: AsyncSession, review: Review, kind: EventType, at: datetime
) -> None:
    """Tell the holder that an emergency release's review is due, or overdue."""
    await emit(
        session,
        kind=kind,
        to=[review.holder_org_id],
        object_type="review",
        object_id=review.id,
        data={
            "review_id": str(review.id),
            "request_id": str(review.request_id),
            "due_at": review.due_at.isoformat(),
        },
        at=at,
    )


async def _audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    request: RecordsRequest,
    item_id: uuid.UUID,
    clock: Clock,
    **details: object,
) -> None:
    await stage(
        session,
        AuditEvent(
            action,
            principal,
            subject_ref=str(request.subject_id) if request.subject_id else None,
            counterpart_org_id=(
                request.holder_org_id
                if principal.org_id == request.requester_org_id
                else request.requester_org_id
            ),
            details={"request_id": str(request.id), "id": str(item_id), **details},
        ),
        clock=clock,
    )


def overdue(due_at: datetime, done_at: datetime | None, now: datetime) -> bool:
    return done_at is None and now >= due_at


async def list_obligations(
    session: AsyncSession, *, principal: Principal, clock: Clock, include_done: bool
) -> list[Obligation]:
    """The holder's staff see their organization's obligations; its auditors see the
    overdue ones (the oversight sector sees every organization's overdue ones)."""
    now = clock.now()
    stmt = select(Obligation).order_by(Obligation.due_at, Obligation.id)
    if principal.has_any(*HOLDER_STAFF):
        stmt = stmt.where(Obligation.holder_org_id == principal.org_id)
        if not include_done:
            stmt = stmt.where(Obligation.done_at.is_(None))
    elif principal.has_any(Role.auditor):
        stmt = stmt.where(Obligation.done_at.is_(None), Obligation.due_at <= now)
        if not sees_everything(principal):
            stmt = stmt.where(Obligation.holder_org_id == principal.org_id)
    else:
        raise ForbiddenError("Your role does not permit this")
    return list((await session.scalars(stmt)).all())


async def mark_done(
    session: AsyncSession,
    *,
    principal: Principal,
    obligation_id: uuid.UUID,
    data: ObligationDone,
    clock: Clock,
) -> Obligation:
    await lock_policy(session)
    duty = (
        await session.scalars(
            select(Obligation)
            .where(Obligation.id == obligation_id, Obligation.holder_org_id == principal.org_id)
            .with_for_update()
        )
    ).first()
    if duty is None:
        raise NotFoundError()
    if not principal.has_any(*HOLDER_STAFF):
        raise ForbiddenError("Only the holder's staff record how the survivor was told")
    if duty.done_at is not None:
        raise ConflictError("This obligation was already marked done")
    if data.done_at > clock.now():
        raise RuleViolationError(errors=[ProblemItem("/done_at", "must not be in the future")])
    if data.done_at < duty.created_at:
        raise RuleViolationError(
            errors=[ProblemItem("/done_at", "must not be before the disclosure it reports")]
        )
    duty.done_at = data.done_at
    duty.done_how = data.how.value
    duty.done_recorded_by = principal.label
    request = await session.get(RecordsRequest, duty.request_id)
    assert request is not None  # noqa: S101 - foreign key
    await _audit(session, principal, "obligation.done", request, duty.id, clock, how=data.how.value)
    await session.flush()
    return duty


async def list_reviews(
    session: AsyncSession, *, principal: Principal, include_closed: bool
) -> list[Review]:
    if not principal.has_any(Role.supervisor):
        raise ForbiddenError("Reviews are for the holder's supervisors")
    stmt = select(Review).where(Review.holder_org_id == principal.org_id)
    if not include_closed:
        stmt = stmt.where(Review.closed_at.is_(None))
    return list((await session.scalars(stmt.order_by(Review.due_at, Review.id))).all())


async def close_review(
    session: AsyncSession,
    *,
    principal: Principal,
    review_id: uuid.UUID,
    data: ReviewClose,
    clock: Clock,
) -> Review:
    await lock_policy(session)
    review = (
        await session.scalars(
            select(Review)
            .where(Review.id == review_id, Review.holder_org_id == principal.org_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if review is None:
        raise NotFoundError()
    if not principal.has_any(Role.supervisor):
        raise ForbiddenError("Reviews are closed by a supervisor")
    if review.released_by == principal.label:
        raise ForbiddenError("The supervisor who released cannot review their own release")
    if review.closed_at is not None:
        raise ConflictError("This review was already closed")
    if not data.survivor_notified and not (data.reason_not_notified or "").strip():
        raise RuleViolationError(
            errors=[ProblemItem("/reason_not_notified", "say why the survivor was not told")]
        )
    review.closed_at = clock.now()
    review.closed_by = principal.label
    review.finding = data.finding.value
    review.survivor_notified = data.survivor_notified
    review.reason_not_notified = data.reason_not_notified
    request = await session.get(RecordsRequest, review.request_id)
    assert request is not None  # noqa: S101 - foreign key
    await _audit(
        session,
        principal,
        "review.closed",
        request,
        review.id,
        clock,
        finding=data.finding.value,
        survivor_notified=data.survivor_notified,
        overdue=review.closed_at > review.due_at,
    )
    await session.flush()
    return review
