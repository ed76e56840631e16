"""Delivery: the only place a referral's ciphertext leaves the service.

Each delivery re-decides every field at this moment (service/release.py), releases
the ciphertext and sealed key of the allowed fields only, lists the others as
withheld with their reasons and policies, and writes the disclosure's audit entry
in the same transaction: if the append fails, nothing is released (the response is
built only after it). A second delivery decides and is audited again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.envelopes.format import (
    EnvelopeContext,
    EnvelopeField,
    EnvelopeHeader,
    ManifestEntry,
    WithheldField,
    build_delivery,
)
from service.errors import ConflictError, ForbiddenError
from service.policy.decisions import Decision, PolicyRef, ReleasePermit
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
from service.referrals import service as referral_service
from service.referrals.models import Referral, ReferralField, ReferralStatus
from service.release import ReleaseInputs, decide_at_release, decision_facts

DELIVERABLE: Final = frozenset(
    {ReferralStatus.sent, ReferralStatus.delivered, ReferralStatus.accepted}
)
SHREDDED: Final = PolicyRef(
    id="crypto-shredded",
    reason="The field's encrypted value was destroyed (withdrawal, revocation or retention)",
    source="engine",
)


def header_of(referral: Referral) -> EnvelopeHeader:
    raw = referral.envelope_header
    context = raw["context"]
    assert isinstance(context, dict)  # noqa: S101 - written by create() from a parsed header
    return EnvelopeHeader(
        version=int(str(raw["version"])),
        sender_org=str(raw["sender_org"]),
        sender_key_id=str(raw["sender_key_id"]),
        recipient_org=str(raw["recipient_org"]),
        recipient_key_id=str(raw["recipient_key_id"]),
        context=EnvelopeContext(
            subject_id=str(context["subject_id"]),
            purpose=str(context["purpose"]),
            consent_id=None if context["consent_id"] is None else str(context["consent_id"]),
            request_id=None if context["request_id"] is None else str(context["request_id"]),
        ),
    )


def _entry(row: ReferralField) -> ManifestEntry:
    return ManifestEntry(
        name=row.name,
        category=row.category,
        ciphertext_sha256=row.ciphertext_sha256,
        sealed_key_sha256=row.sealed_key_sha256,
        key_commitment=row.key_commitment,
    )


def split_fields(
    rows: Sequence[ReferralField], decision: Decision, permit: ReleasePermit
) -> tuple[list[ReferralField], list[WithheldField]]:
    """Released rows (allowed and still holding bytes) and withheld fields with why."""
    by_name = {f.name: f for f in decision.fields}
    released: list[ReferralField] = []
    withheld: list[WithheldField] = []
    for row in rows:
        if row.name in permit.field_names and row.ciphertext is not None:
            released.append(row)
            continue
        refs = (SHREDDED,) if row.name in permit.field_names else by_name[row.name].policies
        withheld.append(
            WithheldField(
                entry=_entry(row),
                reasons=tuple(r.reason for r in refs),
                policies=tuple(r.id for r in refs),
            )
        )
    return released, withheld


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
                "released": [
                    {
                        "name": r.name,
                        "category": r.category,
                        "ciphertext_sha256": r.ciphertext_sha256.hex(),
                    }
                    for r in released
                ],
                "categories": sorted({r.category for r in released}),
                **decision_facts(decision),
                "withheld": [
                    {"name": w.entry.name, "category": w.entry.category, "policies": w.policies}
                    for w in withheld
                ],
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
        released=[
            EnvelopeField(
                name=r.name,
                category=r.category,
                ciphertext=r.ciphertext or b"",
                sealed_key=r.sealed_key or b"",
                key_commitment=r.key_commitment,
            )
            for r in released
        ],
        withheld=withheld,
        disclosure_seq=entry.seq,
    )
