"""A records request's delivery to the requester: how it reads its rows, and what
it marks, around the one door (service/disclosures/release.py), which decides every
field again at this moment on the holder's authority, splits, audits (with the
legal basis and its reference) and builds the body after the commit.

The request is read under the policy lock held shared, as every release decides
(service/audit/ordering.py): deliveries of different requests, and referral
deliveries, decide side by side, while every change to a records request, a
consent or a collaboration holds that lock exclusively and so falls wholly before
or after each delivery. The request's row is locked (FOR UPDATE), so deliveries of
one request never overlap. The first delivery that releases anything under a compelled basis
opens the holder's duty to tell the survivor (service/records_requests/duties.py);
every delivery marks when each field was first released and when the answer was
first delivered.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal, Role
from service.clock import Clock
from service.disclosures.release import Body, Disclosure, Outcome, release
from service.envelopes.stored import header_from_json
from service.errors import ConflictError, ForbiddenError
from service.policy.engine import PolicyEngine
from service.records_requests import duties
from service.records_requests import service as request_service
from service.records_requests.models import LegalBasis, RequestStatus
from service.records_requests.service import COMPELLED

REQUESTERS = (Role.investigator, Role.prosecutor)


async def deliver(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    request_id: uuid.UUID,
    clock: Clock,
    notify_within: timedelta,
) -> Body:
    """Release through the door; return what builds the body, to be called only
    after the transaction commits."""
    request = await request_service.get_visible(
        session, principal=principal, request_id=request_id, lock=True, release=True
    )
    if principal.org_id != request.requester_org_id or not principal.has_any(*REQUESTERS):
        raise ForbiddenError("Only the requesting agency's investigators and prosecutors")
    if request.status != RequestStatus.released.value or request.envelope_header is None:
        raise ConflictError(f"There is no released answer to deliver ({request.status})")
    if request.subject_id is None or request.signature is None:
        raise ConflictError("There is no released answer to deliver")
    rows = await request_service.fields_of(session, request.id)

    async def mark(outcome: Outcome) -> None:
        first_release = bool(outcome.released) and all(r.released_at is None for r in rows)
        if first_release and duties.notifies_survivor(
            LegalBasis(request.legal_basis) in COMPELLED,
            {o for f in outcome.decision.allowed for o in f.obligations},
        ):
            await duties.open_notification(
                session,
                request=request,
                principal=principal,
                clock=clock,
                notify_within=notify_within,
            )
        for row in rows:
            if row.name in outcome.released and row.released_at is None:
                row.released_at = outcome.at
        if request.delivered_at is None:
            request.delivered_at = outcome.at
        await session.flush()

    return await release(
        session,
        Disclosure(
            sender_org_id=request.holder_org_id,
            sender_roles=frozenset(request.responder_roles or ()),
            recipient_org_id=request.requester_org_id,
            subject_id=request.subject_id,
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            consent_id=request.consent_id,
            rows=rows,
            header=header_from_json(request.envelope_header),
            signature=request.signature,
            details={"request_id": str(request.id), "legal_reference": request.legal_reference},
            justification_given=True,
        ),
        principal=principal,
        engine=engine,
        clock=clock,
        mark=mark,
    )
