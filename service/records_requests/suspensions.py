"""Accounting suspensions (HIPAA 45 CFR 164.528(a)(2) is the model): a law
enforcement agency asks, in writing, that the disclosures of one of its records
requests be left out of the survivor's accounting until a stated time. The
suspension is itself audited (the document's hash and the end, never free text)
and ends by itself: service/subjects/service.py compares `until` with the time of
each accounting, so no job has to lift it, and the audit log is never edited."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.errors import ForbiddenError, ProblemItem, RuleViolationError
from service.records_requests.schemas import SuspensionCreate
from service.records_requests.service import get_visible
from service.subjects.models import AccountingSuspension


async def suspend_accounting(
    session: AsyncSession,
    *,
    principal: Principal,
    request_id: uuid.UUID,
    data: SuspensionCreate,
    clock: Clock,
    max_days: float,
) -> AccountingSuspension:
    """The requesting agency asks, in writing, that this request's disclosures stay
    out of the survivor's accounting until `until`. Audited; ends by itself."""
    request = await get_visible(session, principal=principal, request_id=request_id, lock=True)
    if principal.org_id != request.requester_org_id or not principal.has_any(
        Role.investigator, Role.prosecutor
    ):
        raise ForbiddenError("Only the requesting agency may ask for a suspension")
    now = clock.now()
    if not now < data.until <= now + timedelta(days=max_days):
        raise RuleViolationError(
            errors=[ProblemItem("/until", f"must be in the next {max_days:g} days")]
        )
    suspension = AccountingSuspension(
        id=uuid.uuid4(),
        request_id=request.id,
        requester_org_id=principal.org_id,
        document_sha256=data.document_sha256,
        created_at=now,
        created_by=principal.label,
        until=data.until,
    )
    session.add(suspension)
    await session.flush()
    await stage(
        session,
        AuditEvent(
            "suspension.created",
            principal,
            subject_ref=str(request.subject_id) if request.subject_id else None,
            counterpart_org_id=request.holder_org_id,
            details={
                "request_id": str(request.id),
                "id": str(suspension.id),
                "document_sha256": data.document_sha256,
                "until": data.until.isoformat(),
            },
        ),
        clock=clock,
    )
    return suspension
