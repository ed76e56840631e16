"""The moment of release: decide every field afresh, in order with every change.

Referral deliveries and records-request deliveries both come here (DESIGN.md
guarantee 2: the decision is made when the data leaves, not when it was sent).

Ordering (API.md "Ordering"): the decision and the disclosure's commit are ordered
against consent revocations, membership removals and organization rule changes by
one mechanism, the audit log's head row. Every one of those changes appends its
audit entry in its own transaction, and a release takes the head lock *before* it
reads any input. So a change whose entry precedes the disclosure's committed
before the release read its inputs (and the release saw it), and a change whose
entry follows it was not committed when the release decided. An export of the log
alone proves it: no disclosure under a consent follows that consent's revocation.
On PostgreSQL the lock is `SELECT ... FOR UPDATE` on the head row; on SQLite the
write lock that `BEGIN IMMEDIATE` takes serializes every writer anyway.

Lock order, everywhere: the audit head, then a consent grant's rows, then referral
rows. A revocation or amendment takes the head first as well
(service/consents/service.py), and so do a delivery and every referral transition
before they lock their referral (service/referrals/service.py), so no two of them
can wait on each other in a cycle.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import lock_head
from service.clock import Clock
from service.consents.service import consent_in_force
from service.policy.decisions import Decision, Effect, FieldDecision, PolicyRef
from service.policy.engine import PolicyEngine
from service.policy.inputs import Actor, DecisionRequest, FieldRef
from service.release_inputs import party_inputs

# Policy id when an organization taking part is no longer active: nothing leaves.
INACTIVE_ORGANIZATION = "organization-inactive"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseInputs:
    """What is known about a release before its inputs are read afresh."""

    actor_org_id: uuid.UUID
    actor_roles: frozenset[str]
    sender_org_id: uuid.UUID
    recipient_org_id: uuid.UUID
    subject_owner: uuid.UUID
    purpose: str
    legal_basis: str
    consent_id: uuid.UUID | None
    fields: Sequence[FieldRef]
    justification_given: bool = False


def _deny_all(fields: Sequence[FieldRef], policy: str, reason: str, version: str) -> Decision:
    ref = PolicyRef(id=policy, reason=reason, source="engine")
    return Decision(
        policy_version=version,
        org_rules=(),
        fields=tuple(FieldDecision(f.name, f.category, Effect.deny, (ref,)) for f in fields),
    )


async def decide_at_release(
    session: AsyncSession, engine: PolicyEngine, inputs: ReleaseInputs, *, clock: Clock
) -> Decision:
    """Lock the audit head, then read consent, memberships, agreements, both
    organizations' records and rules as they are now, and decide each field. All but
    the consent may come from the process's cache for the epoch read from the locked
    head (service/release_inputs.py): exactly what a read would return.

    The caller must append its disclosure entry in the same transaction (the lock
    is held until it commits)."""
    head = await lock_head(session)
    now = clock.now()
    parties = await party_inputs(
        session, engine, inputs.sender_org_id, inputs.recipient_org_id, epoch=head.policy_epoch
    )
    if parties.sender is None or parties.recipient is None:
        return _deny_all(
            inputs.fields,
            INACTIVE_ORGANIZATION,
            "The sending or receiving organization is no longer active",
            engine.version,
        )
    consent = (
        await consent_in_force(session, inputs.consent_id, now)
        if inputs.consent_id is not None
        else None
    )
    request = DecisionRequest(
        actor=Actor(org_id=inputs.actor_org_id, roles=inputs.actor_roles),
        sender=parties.sender,
        recipient=parties.recipient,
        subject_owner=inputs.subject_owner,
        purpose=inputs.purpose,
        legal_basis=inputs.legal_basis,
        at=now,
        fields=tuple(inputs.fields),
        consent=consent,
        agreements=parties.agreements,
        justification_given=inputs.justification_given,
    )
    decision = engine.decide(request, org_rules=parties.rules)
    return dataclasses.replace(decision, decided_at=now)


def decision_facts(decision: Decision) -> dict[str, object]:
    """The policy side of a disclosure's audit entry: identifiers and codes only.
    `decided_at` is the instant the inputs were read at; the entry's own time is
    when it was written, which may be later."""
    return {
        "decided_at": decision.decided_at.isoformat() if decision.decided_at else None,
        "policy_version": decision.policy_version,
        "org_rules": [
            {"org": str(r.org_id), "version": r.version, "sha256": r.sha256}
            for r in decision.org_rules
        ],
        "withheld": [
            {"name": f.name, "category": f.category, "policies": list(f.policy_ids)}
            for f in decision.denied
        ],
    }
