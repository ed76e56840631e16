"""Delivery: the only place a referral's ciphertext leaves the service.

Each delivery re-decides every field at this moment (service/release.py), releases
the ciphertext and sealed key of the allowed fields only, lists the others as
withheld with their reasons and policies, and writes the disclosure's audit entry
in the same transaction: if the append fails, nothing is released (the response is
built only after it). A second delivery decides and is audited again.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.envelopes.format import EnvelopeHeader, build_delivery
from service.envelopes.stored import (
    delivery_facts,
    header_from_json,
    released_field,
    split_fields,
)
from service.errors import ConflictError, ForbiddenError
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
from service.referrals import service as referral_service
from service.referrals.models import Referral, ReferralStatus
from service.release import ReleaseInputs, decide_at_release, decision_facts

DELIVERABLE: Final = frozenset(
    {ReferralStatus.sent, ReferralStatus.delivered, ReferralStatus.accepted}
)


def header_of(referral: Referral) -> EnvelopeHeader:
    return header_from_json(referral.envelope_header)


async def deliver(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    referral_id: uuid.UUID,
    clock: Clock,
) -> dict[str, object]:
    referral = await referral_service.get_visible(
        session, principal=principal, referral_id=referral_id, lock=True
    )
    if principal.org_id != referral.recipient_org_id or not principal.has_any(
        Role.caseworker, Role.supervisor
    ):
        raise ForbiddenError("Only the recipient's caseworkers and supervisors may deliver")
    if ReferralStatus(referral.status) not in DELIVERABLE:
        raise ConflictError(f"A referral that is {referral.status} cannot be delivered")
    rows = await referral_service.fields_of(session, [referral.id])
    decision = await decide_at_release(
        session,
        engine,
        ReleaseInputs(
            actor_org_id=referral.sender_org_id,
            actor_roles=frozenset(referral.sender_roles),
            sender_org_id=referral.sender_org_id,
            recipient_org_id=referral.recipient_org_id,
            subject_owner=referral.sender_org_id,
            purpose=referral.purpose,
            legal_basis=referral_service.CONSENT_BASIS,
            consent_id=referral.consent_id,
            fields=[FieldRef(r.name, r.category) for r in rows],
        ),
        clock=clock,
    )
    released, withheld = split_fields(rows, decision, decision.permit())
    entry = await append(
        session,
        AuditEvent(
            "disclosure" if released else "withheld",
            principal,
            subject_ref=str(referral.subject_id),
            counterpart_org_id=referral.sender_org_id,
            details={
                "referral_id": str(referral.id),
                "recipient_org": str(referral.recipient_org_id),
                "consent_id": str(referral.consent_id),
                "purpose": referral.purpose,
                "legal_basis": referral_service.CONSENT_BASIS,
                **decision_facts(decision),
                **delivery_facts(released, withheld),
            },
        ),
        clock=clock,
    )
    now = decision.decided_at or clock.now()
    for row in released:
        if row.released_at is None:
            row.released_at = now
    event = "delivered" if released else "delivered_withheld"
    if referral.status == ReferralStatus.sent.value:
        # The first delivery changes the referral; a later one only adds an event.
        referral.status = ReferralStatus.delivered.value
        referral.delivered_at = now
        referral.updated_at = now
    await referral_service.record_event(session, referral, event, principal, entry.seq, clock)
    return build_delivery(
        header=header_of(referral),
        signature=referral.signature,
        released=[released_field(r) for r in released],
        withheld=withheld,
        disclosure_seq=entry.seq,
    )
