"""Delivery of a records request's answer to the requester, as with referrals
(service/referrals/deliver.py): every field decided again at this moment on the
holder's authority, the allowed ones released, the others withheld with why, and
the disclosure's audit entry written in the same transaction (with the legal basis
and its reference) before anything is answered."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.disclosures.decide import ReleaseInputs, decide_at_release, decision_facts
from service.envelopes.format import build_delivery
from service.envelopes.stored import (
    delivery_facts,
    header_from_json,
    released_field,
    split_fields,
)
from service.errors import ConflictError, ForbiddenError
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
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
) -> dict[str, object]:
    request = await request_service.get_visible(
        session, principal=principal, request_id=request_id, lock=True
    )
    if principal.org_id != request.requester_org_id or not principal.has_any(*REQUESTERS):
        raise ForbiddenError("Only the requesting agency's investigators and prosecutors")
    if request.status != RequestStatus.released.value or request.envelope_header is None:
        raise ConflictError(f"There is no released answer to deliver ({request.status})")
    if request.subject_id is None or request.signature is None:
        raise ConflictError("There is no released answer to deliver")
    rows = await request_service.fields_of(session, request.id)
    decision = await decide_at_release(
        session,
        engine,
        ReleaseInputs(
            actor_org_id=request.holder_org_id,
            actor_roles=frozenset(request.responder_roles or ()),
            sender_org_id=request.holder_org_id,
            recipient_org_id=request.requester_org_id,
            subject_owner=request.holder_org_id,
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            consent_id=request.consent_id,
            fields=[FieldRef(r.name, r.category) for r in rows],
            justification_given=True,
        ),
        clock=clock,
    )
    released, withheld = split_fields(rows, decision, decision.permit())
    entry = await append(
        session,
        AuditEvent(
            "disclosure" if released else "withheld",
            principal,
            subject_ref=str(request.subject_id),
            counterpart_org_id=request.holder_org_id,
            details={
                "request_id": str(request.id),
                "recipient_org": str(request.requester_org_id),
                "consent_id": str(request.consent_id) if request.consent_id else None,
                "purpose": request.purpose,
                "legal_basis": request.legal_basis,
                "legal_reference": request.legal_reference,
                **decision_facts(decision),
                **delivery_facts(released, withheld),
            },
        ),
        clock=clock,
    )
    now = decision.decided_at or clock.now()
    first_release = bool(released) and all(r.released_at is None for r in rows)
    if first_release and duties.notifies_survivor(
        LegalBasis(request.legal_basis) in COMPELLED,
        {o for f in decision.allowed for o in f.obligations},
    ):
        await duties.open_notification(
            session, request=request, principal=principal, clock=clock, notify_within=notify_within
        )
    for row in released:
        if row.released_at is None:
            row.released_at = now
    if request.delivered_at is None:
        request.delivered_at = now
    await session.flush()
    return build_delivery(
        header=header_from_json(request.envelope_header),
        signature=request.signature,
        released=[released_field(r) for r in released],
        withheld=withheld,
        disclosure_seq=entry.seq,
    )
