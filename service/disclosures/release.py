"""The one door: the only way a field's ciphertext leaves the service.

Referral deliveries (service/referrals/deliver.py) and records-request deliveries
(service/records_requests/deliver.py) both release through `release`. They differ
only in how they read their rows (a referral's under the policy lock held shared,
so deliveries run side by side; a records request's under the audit head, held
exclusively) and in the identifiers they add to the audit entry. Everything else
happens here, once, in this order, in the caller's one transaction:

1. **decide** every field afresh, now (DESIGN.md guarantee 2;
   service/disclosures/decide.py): consent, memberships, agreements, both
   organizations and their rules as they stand, under the ordering of
   service/audit/ordering.py;
2. **split** the fields into released (allowed and still holding bytes) and
   withheld (with the reasons and deciding policies, or as crypto-shredded);
3. **mark**: the kind records what this release changed (when each field was first
   released, the referral's or request's state, a duty the release creates), its
   row locks taken before the append queue (the lock order);
4. **audit**: the disclosure's entry (or a `withheld` entry when nothing is
   released) is staged in the same transaction (guarantee 3): on PostgreSQL a
   deferred trigger appends it during COMMIT, holding the audit head only while
   the server runs it; on SQLite it is appended at once, under the BEGIN IMMEDIATE
   write lock (service/audit/at_commit.py). Both kinds use this one mechanism, on
   both engines: the head is the one lock every audited transaction of every node
   waits for, so the release holds it for as little as the engine allows. If the
   entry cannot be written, the commit fails and nothing is released;
5. **build**: the caller gets a function that builds the body, the only place
   ciphertext leaves, and calls it only after the commit
   (service/web/responses.py `DeferredJSONResponse`); the entry's number is known
   by then.

The kind's part is a `Disclosure` (what it read) and a `mark` function; the door
accepts fields only through a `ReleasePermit` that the policy engine produced
(STYLE.md rule 5), so no field is released without a decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent, CitingRow
from service.auth.principals import Principal
from service.clock import Clock
from service.disclosures.decide import ReleaseInputs, decide_at_release, decision_facts
from service.envelopes.format import EnvelopeField, EnvelopeHeader, WithheldField, build_delivery
from service.envelopes.stored import Row, SealedRow, manifest_entry
from service.policy.decisions import Decision, PolicyRef, ReleasePermit
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Disclosure:
    """One delivery as its kind read it, under the ordering's locks."""

    # The discloser: the referral's sender, the request's holder. It is also the
    # subject's owner and the organization on whose authority the fields leave.
    sender_org_id: uuid.UUID
    sender_roles: frozenset[str]  # the roles of whoever sent or answered
    recipient_org_id: uuid.UUID
    subject_id: uuid.UUID
    purpose: str
    legal_basis: str
    consent_id: uuid.UUID | None
    rows: Sequence[SealedRow]  # the sealed fields, by name: exactly these are decided
    header: EnvelopeHeader
    signature: bytes
    # The kind's own identifiers for the entry (referral_id, or request_id and
    # legal_reference): identifiers and codes only.
    details: Mapping[str, object]
    # The consent's terms, when the kind read them with its rows (else read here).
    consent_terms: Sequence[Any] | None = None
    justification_given: bool = False

    def inputs(self) -> ReleaseInputs:
        return ReleaseInputs(
            actor_org_id=self.sender_org_id,
            actor_roles=self.sender_roles,
            sender_org_id=self.sender_org_id,
            recipient_org_id=self.recipient_org_id,
            subject_owner=self.sender_org_id,
            purpose=self.purpose,
            legal_basis=self.legal_basis,
            consent_id=self.consent_id,
            fields=[FieldRef(r.name, r.category) for r in self.rows],
            justification_given=self.justification_given,
            consent_terms=self.consent_terms,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the door decided, handed to the kind's `mark`."""

    released: frozenset[str]  # the names of the fields released
    decision: Decision
    at: datetime  # the decision's instant


# The kind's record of what the release changed; returns the row that cites the
# entry, if any (a referral's timeline event).
Mark = Callable[[Outcome], Awaitable[CitingRow | None]]
Body = Callable[[], dict[str, object]]


async def release(
    session: AsyncSession,
    disclosure: Disclosure,
    *,
    principal: Principal,
    engine: PolicyEngine,
    clock: Clock,
    mark: Mark,
) -> Body:
    """Decide, split, mark and audit one delivery in the caller's transaction;
    return what builds its body, to be called only after the commit."""
    decision = await decide_at_release(session, engine, disclosure.inputs(), clock=clock)
    released, withheld = split_fields(disclosure.rows, decision, decision.permit())
    at = decision.decided_at or clock.now()
    citing = await mark(Outcome(frozenset(r.name for r in released), decision, at))
    entry = await stage(
        session,
        AuditEvent(
            "disclosure" if released else "withheld",
            principal,
            subject_ref=str(disclosure.subject_id),
            # The discloser's auditors see the entry; the recipient is in the details.
            counterpart_org_id=disclosure.sender_org_id,
            details={
                **disclosure.details,
                "recipient_org": str(disclosure.recipient_org_id),
                "consent_id": str(disclosure.consent_id) if disclosure.consent_id else None,
                "purpose": disclosure.purpose,
                "legal_basis": disclosure.legal_basis,
                **decision_facts(decision),
                **delivery_facts(released, withheld),
            },
        ),
        clock=clock,
        citing=citing,
    )
    header, signature = disclosure.header, disclosure.signature
    fields = [released_field(r) for r in released]

    def build() -> dict[str, object]:
        return build_delivery(
            header=header,
            signature=signature,
            released=fields,
            withheld=withheld,
            disclosure_seq=entry.committed_seq(),
        )

    return build


SHREDDED = PolicyRef(
    id="crypto-shredded",
    reason="The field's encrypted value was destroyed (withdrawal, revocation or retention)",
    source="engine",
)


def split_fields(
    rows: Sequence[Row], decision: Decision, permit: ReleasePermit
) -> tuple[list[Row], list[WithheldField]]:
    """Released rows (allowed and still holding bytes) and withheld fields with why."""
    by_name = {f.name: f for f in decision.fields}
    allowed = permit.field_names
    released: list[Row] = []
    withheld: list[WithheldField] = []
    for row in rows:
        if row.name in allowed and row.ciphertext is not None:
            released.append(row)
            continue
        refs = (SHREDDED,) if row.name in allowed else by_name[row.name].policies
        withheld.append(
            WithheldField(
                entry=manifest_entry(row),
                reasons=tuple(r.reason for r in refs),
                policies=tuple(r.id for r in refs),
            )
        )
    return released, withheld


def released_field(row: SealedRow) -> EnvelopeField:
    return EnvelopeField(
        name=row.name,
        category=row.category,
        ciphertext=row.ciphertext or b"",
        sealed_key=row.sealed_key or b"",
        key_commitment=row.key_commitment,
    )


def delivery_facts(
    released: Sequence[SealedRow], withheld: Sequence[WithheldField]
) -> dict[str, object]:
    """The release side of a delivery's audit entry: names, categories and the
    SHA-256 of each released ciphertext, the withheld fields with their policies.
    Never a value."""
    return {
        "released": [
            {"name": r.name, "category": r.category, "ciphertext_sha256": r.ciphertext_sha256.hex()}
            for r in released
        ],
        "categories": sorted({r.category for r in released}),
        "withheld": [
            {"name": w.entry.name, "category": w.entry.category, "policies": w.policies}
            for w in withheld
        ],
    }
