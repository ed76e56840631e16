"""Delivery: the only place a referral's ciphertext leaves the service.

Each delivery re-decides every field at this moment (service/release.py), releases
the ciphertext and sealed key of the allowed fields only, lists the others as
withheld with their reasons and policies, and writes the disclosure's audit entry
in the same transaction: if the append fails, nothing is released. The response
body, the only place ciphertext leaves, is built only after that transaction has
committed (service/responses.py). A second delivery decides and is audited again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import direct
from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.db import Base
from service.direct import DirectStatement
from service.envelopes.format import build_delivery
from service.envelopes.stored import (
    StoredField,
    delivery_facts,
    header_from_json,
    released_field,
    split_fields,
)
from service.errors import ConflictError, ForbiddenError
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
from service.referrals import service as referral_service
from service.referrals.models import ReferralField, ReferralStatus
from service.release import ReleaseInputs, decide_at_release, decision_facts

DELIVERABLE: Final = frozenset(
    {ReferralStatus.sent, ReferralStatus.delivered, ReferralStatus.accepted}
)


_FIELDS: Final = Base.metadata.tables[ReferralField.__tablename__]
# On the driver (service/direct.py): every delivery reads the fields, and the first
# release of each field records its time.
_STORED_FIELDS = DirectStatement(
    select(
        _FIELDS.c.name,
        _FIELDS.c.category,
        _FIELDS.c.ciphertext_sha256,
        _FIELDS.c.sealed_key_sha256,
        _FIELDS.c.key_commitment,
        _FIELDS.c.ciphertext,
        _FIELDS.c.sealed_key,
        _FIELDS.c.released_at,
    )
    .where(_FIELDS.c.referral_id == bindparam("referral_id"))
    .order_by(_FIELDS.c.name)
)
_MARK_RELEASED = DirectStatement(
    update(_FIELDS)
    .where(
        _FIELDS.c.referral_id == bindparam("b_referral_id"),
        _FIELDS.c.name == bindparam("b_name"),
        _FIELDS.c.released_at.is_(None),
    )
    .values(released_at=bindparam("at"))
)


async def stored_fields(session: AsyncSession, referral_id: uuid.UUID) -> list[StoredField]:
    """One referral's sealed fields, by name, as plain values (the delivery path)."""
    rows = await direct.fetch(session, _STORED_FIELDS, {"referral_id": referral_id})
    return [StoredField(*row) for row in rows]


async def mark_released(
    session: AsyncSession, referral_id: uuid.UUID, names: Sequence[str], at: datetime
) -> None:
    """Record the first release of these fields (the retention clock starts)."""
    if names:
        await direct.execute_many(
            session,
            _MARK_RELEASED,
            [{"b_referral_id": referral_id, "b_name": name, "at": at} for name in names],
        )


async def deliver(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    referral_id: uuid.UUID,
    clock: Clock,
) -> Callable[[], dict[str, object]]:
    """Decide, audit and record the delivery; return what builds its body. The
    caller builds it only after the transaction commits (service/responses.py)."""
    referral = await referral_service.read_for_delivery(
        session, principal=principal, referral_id=referral_id
    )
    if principal.org_id != referral.recipient_org_id or not principal.has_any(
        Role.caseworker, Role.supervisor
    ):
        raise ForbiddenError("Only the recipient's caseworkers and supervisors may deliver")
    if ReferralStatus(referral.status) not in DELIVERABLE:
        raise ConflictError(f"A referral that is {referral.status} cannot be delivered")
    rows = await stored_fields(session, referral.id)
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
    now = decision.decided_at or clock.now()
    # The first delivery's own changes come before the append: their row locks are
    # taken before the append queue (the lock order, service/release.py), and the
    # audit head is then held for the fewest statements.
    await mark_released(
        session, referral.id, [r.name for r in released if r.released_at is None], now
    )
    if referral.status == ReferralStatus.sent.value:
        # The first delivery changes the referral; a later one only adds an event.
        await referral_service.set_delivered(session, referral.id, now)
    event = "delivered" if released else "delivered_withheld"
    # The entry is appended when this transaction commits (service/audit/at_commit.py):
    # the audit head, which every audited transaction waits for, is held only while
    # the database runs the commit, not across this process's round trips.
    entry = await stage(
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
        # The timeline event cites the entry, and is written with it.
        citing=referral_service.timeline_row(referral.id, event, principal, clock),
    )
    header = header_from_json(referral.envelope_header)
    fields = [released_field(r) for r in released]

    def build() -> dict[str, object]:
        return build_delivery(
            header=header,
            signature=referral.signature,
            released=fields,
            withheld=withheld,
            disclosure_seq=entry.committed_seq(),
        )

    return build
