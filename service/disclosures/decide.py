"""The moment of release: decide every field afresh, in order with every change.

Referral deliveries and records-request deliveries both come here (DESIGN.md
guarantee 2: the decision is made when the data leaves, not when it was sent).

Ordering (API.md "Ordering"): the decision and the disclosure's commit are ordered
against consent revocations, membership removals and organization rule changes by
one mechanism, the policy lock (service/audit/log.py, migration 0100). A release
holds it shared from before it reads any input until it commits; every transaction
that locks the audit head for anything else (every consent change, every other
audited write) and every write to organizations, memberships, agreements or rules
(the policy-epoch trigger) holds it exclusively. So a change whose entry precedes
the disclosure's committed before the release read its inputs (and the release saw
it), and a change whose entry follows it was not committed when the release
decided. An export of the log alone proves it: no disclosure under a consent
follows that consent's revocation. Releases decide side by side and meet only at
the append (the append queue, then the head row, each held to the end of the
commit; a referral delivery takes them only inside its COMMIT, where a trigger
appends its staged entry: service/audit/at_commit.py). On
SQLite the write lock that `BEGIN IMMEDIATE` takes serializes every writer anyway.

Lock order, everywhere: the policy lock, then a consent grant's rows and referral
rows, then the append queue and the head row. A revocation or amendment, and every
referral transition, takes the policy lock exclusively first (`lock_head`), so it
never runs beside a release; two releases take row locks before the append queue
and the head row last, so no two transactions can wait on each other in a cycle.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.ordering import share_policy
from service.clock import Clock
from service.consents.in_force import consent_from_terms, consent_in_force
from service.disclosures.inputs import party_inputs
from service.policy.decisions import Decision, Effect, FieldDecision, PolicyRef
from service.policy.engine import PolicyEngine
from service.policy.inputs import Actor, DecisionRequest, FieldRef

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
    # The consent's terms (consents/in_force.py TERMS_COLUMNS), when the caller read
    # them under the policy lock with its other inputs; None: read them here.
    consent_terms: Sequence[Any] | None = None


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
    """Hold the policy lock shared (service/audit/log.py `share_policy`), then read
    consent, memberships, agreements, both organizations' records and rules as they
    are now, and decide each field. All but the consent may come from the process's
    cache for the epoch read under that lock (service/disclosures/inputs.py): exactly
    what a read would return.

    The caller must append its disclosure entry in the same transaction (the lock
    is held until it commits, so no change to these inputs falls between the
    decision and the entry)."""
    epoch = await share_policy(session)
    now = clock.now()
    parties = await party_inputs(
        session, engine, inputs.sender_org_id, inputs.recipient_org_id, epoch=epoch
    )
    if parties.sender is None or parties.recipient is None:
        return _deny_all(
            inputs.fields,
            INACTIVE_ORGANIZATION,
            "The sending or receiving organization is no longer active",
            engine.version,
        )
    if inputs.consent_id is None:
        consent = None
    elif inputs.consent_terms is not None:
        consent = await consent_from_terms(session, inputs.consent_id, inputs.consent_terms, now)
    else:
        consent = await consent_in_force(session, inputs.consent_id, now)
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
