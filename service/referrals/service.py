"""Sending referrals and moving them through their lifecycle (API.md "Referrals").

sent -> delivered -> accepted | declined -> closed; the sender may withdraw before
delivery; the recipient may decline before accepting. Every change is timestamped
on the referral's timeline and audited in the same transaction; an invalid
transition is a 409 and changes nothing. Referral metadata is visible to staff of
the two organizations and to oversight auditors; everyone else gets 404.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final, NamedTuple

from sqlalchemy import Select, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import StagedEntry, stage
from service.audit.log import AuditEvent, CitingRow, append
from service.audit.ordering import lock_head, lock_key, share_policy
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.consents.models import ConsentVersion
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base
from service.disclosures.decide import ReleaseInputs, decide_at_release, decision_facts
from service.disclosures.errors import EnvelopeReplayError, refusal
from service.envelopes import submission
from service.envelopes.format import Envelope
from service.envelopes.format import envelope_id as envelope_id_of
from service.envelopes.stored import sealed_columns
from service.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProblemItem,
    RuleViolationError,
)
from service.events.catalog import EventType
from service.events.outbox import emit
from service.idempotency.service import lock_name
from service.organizations.models import Organization
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
from service.referrals import shred
from service.referrals.availability import RECIPIENT_WARNINGS as RECIPIENT_WARNINGS
from service.referrals.availability import recipient_warnings
from service.referrals.models import Referral, ReferralEvent, ReferralField, ReferralStatus
from service.referrals.schemas import ReferralCreate
from service.subjects.erasure import require_not_erased
from service.subjects.service import get_owned
from service.web.pagination import PageRequest

STAFF: Final = (Role.caseworker, Role.supervisor, Role.org_admin, Role.auditor)
CONSENT_BASIS: Final = "consent"


def visible_referrals(principal: Principal) -> Select[Referral]:
    stmt = select(Referral)
    if principal.has_any(Role.auditor) and principal.sector.value == "oversight":
        return stmt
    if not principal.has_any(*STAFF):
        return stmt.where(Referral.id.is_(None))
    return stmt.where(
        or_(
            Referral.sender_org_id == principal.org_id,
            Referral.recipient_org_id == principal.org_id,
        )
    )


# Built once (this runs on every delivery and transition): by id, for an oversight
# auditor, or for a party to the referral; as entities and their locked forms (the
# delivery path reads plain rows with the same conditions: service/referrals/deliver.py).
_REFERRALS: Final = Base.metadata.tables[Referral.__tablename__]
VISIBLE_WHERE: Final = {
    "oversight": (_REFERRALS.c.id == bindparam("referral_id"),),
    "party": (
        _REFERRALS.c.id == bindparam("referral_id"),
        or_(
            _REFERRALS.c.sender_org_id == bindparam("org_id"),
            _REFERRALS.c.recipient_org_id == bindparam("org_id"),
        ),
    ),
}
_ENTITY: Final = {
    (rule, lock): (
        select(Referral).where(*where).with_for_update().execution_options(populate_existing=True)
        if lock
        else select(Referral).where(*where)
    )
    for rule, where in VISIBLE_WHERE.items()
    for lock in (False, True)
}


class DeliveryRow(NamedTuple):
    """What a delivery reads of its referral: plain values, no entity."""

    id: uuid.UUID
    sender_org_id: uuid.UUID
    recipient_org_id: uuid.UUID
    subject_id: uuid.UUID
    consent_id: uuid.UUID
    purpose: str
    status: str
    envelope_header: dict[str, object]
    signature: bytes
    sender_roles: list[str]


def audience(principal: Principal) -> str:
    """Which rule of `visible_referrals` applies to `principal`; 404 if none."""
    if principal.has_any(Role.auditor) and principal.sector.value == "oversight":
        return "oversight"
    if principal.has_any(*STAFF):
        return "party"
    raise NotFoundError()


async def get_visible(
    session: AsyncSession, *, principal: Principal, referral_id: uuid.UUID, lock: bool = False
) -> Referral:
    """The referral if `principal` may see it (the rule of `visible_referrals`), else 404."""
    rule = audience(principal)
    if lock:
        # Lock order everywhere: the audit head, a consent grant's rows, referral rows
        # (a revocation shreds referrals of its grant while holding the first two).
        await lock_head(session)
    params = {"referral_id": referral_id, "org_id": principal.org_id}
    referral = (await session.scalars(_ENTITY[rule, lock], params)).first()
    if referral is None:
        raise NotFoundError()
    return referral


_SET_DELIVERED: Final = DirectStatement(
    update(_REFERRALS)
    .where(
        _REFERRALS.c.id == bindparam("b_id"),
        _REFERRALS.c.status == ReferralStatus.sent.value,
    )
    .values(
        status=ReferralStatus.delivered.value,
        delivered_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
    .returning(_REFERRALS.c.id)
)


async def set_delivered(session: AsyncSession, referral_id: uuid.UUID, at: datetime) -> bool:
    """The first delivery's change to a referral: only while it is still `sent`, so
    of two first deliveries at once the later one changes nothing (the row lock the
    first one's UPDATE takes makes the second re-check the state after its commit).
    True if this call changed it."""
    return bool(await direct.fetch(session, _SET_DELIVERED, {"b_id": referral_id, "at": at}))


def request_fingerprint(data: ReferralCreate) -> str:
    material = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


async def _check_request(
    session: AsyncSession, principal: Principal, data: ReferralCreate, engine: PolicyEngine
) -> tuple[list[ProblemItem], Envelope | None]:
    problems: list[ProblemItem] = []
    if data.purpose not in engine.taxonomy.vocabulary.purposes:
        problems.append(ProblemItem("/purpose", "unknown purpose"))
    recipient = await session.get(Organization, data.recipient_org_id)
    if recipient is None or not recipient.active:
        problems.append(ProblemItem("/recipient_org_id", "no such active organization"))
    elif recipient.id == principal.org_id:
        problems.append(ProblemItem("/recipient_org_id", "a referral goes to another organization"))
    consent = await session.get(ConsentVersion, data.consent_id)
    if consent is None or consent.subject_id != data.subject_id:
        problems.append(ProblemItem("/consent_id", "no such consent for this subject"))
    parse_problems, envelope = submission.parse(data.envelope, engine.taxonomy.vocabulary)
    problems += parse_problems
    if problems or envelope is None:
        return problems, None
    problems += await submission.check_bound_and_signed(
        session,
        envelope,
        sender_org_id=principal.org_id,
        recipient_org_id=data.recipient_org_id,
        recipient_path="/recipient_org_id",
        subject_id=data.subject_id,
        purpose=data.purpose,
        consent_id=data.consent_id,
    )
    return problems, envelope


class Sent(NamedTuple):
    """A new referral's timeline as its send staged it: the "sent" event and one per
    recipient warning, written at the commit citing `entry` (on PostgreSQL by the
    commit-time trigger, so not readable before the commit)."""

    entry: StagedEntry
    events: CitingRow

    def timeline(self) -> list[tuple[datetime, str, uuid.UUID | None, int]]:
        """(at, event, actor organization, audit seq) of each event; after the commit."""
        seq = self.entry.committed_seq()
        values = self.events.values
        return [
            (values["at"], name, values["actor_org_id"], seq)
            for name in (values["event"], *self.events.also)
        ]


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    data: ReferralCreate,
    idempotency_key: str | None,
    clock: Clock,
) -> tuple[Referral, Sent | None]:
    """Validate everything, decide every field now, store. Returns (referral, what was
    sent) for a new referral; a retry with the same Idempotency-Key and body returns
    (the first referral, None).

    Locks (service/audit/ordering.py): the subject's row FOR SHARE (an erasure in
    progress is waited for, and its mark seen), the policy lock shared, as a
    delivery holds it (a send decides every field: it runs beside deliveries and
    other sends, and waits only for a change to what it reads), then the key locks
    of what must not be sent twice: the sender's Idempotency-Key, then the envelope
    id, so that of two sends of one key the second runs after the first and its
    checks below see the first's referral. The unique constraints on both stay the
    last guard. The entry is staged and appended at the commit (at_commit.py)."""
    fingerprint = request_fingerprint(data)
    owned = await get_owned(session, principal=principal, subject_id=data.subject_id, share=True)
    await share_policy(session)
    if idempotency_key is not None:
        await lock_key(session, "idempotency", lock_name(principal.org_id, idempotency_key))
        earlier = (
            await session.scalars(
                select(Referral).where(
                    Referral.sender_org_id == principal.org_id,
                    Referral.idempotency_key == idempotency_key,
                )
            )
        ).first()
        if earlier is not None:
            if earlier.request_sha256 != fingerprint:
                raise RuleViolationError(
                    "This Idempotency-Key was used with a different request",
                    errors=[ProblemItem("header:/Idempotency-Key", "reused with another body")],
                )
            return earlier, None
    subject = require_not_erased(owned)
    problems, envelope = await _check_request(session, principal, data, engine)
    if problems or envelope is None:
        raise RuleViolationError(errors=problems)
    envelope_id = envelope_id_of(envelope)
    await lock_key(session, "envelope", envelope_id)
    if (
        await session.scalars(select(Referral.id).where(Referral.envelope_id == envelope_id))
    ).first() is not None:
        raise EnvelopeReplayError(
            errors=[ProblemItem("/envelope", "this envelope was already sent; seal a new one")]
        )
    decision = await decide_at_release(
        session,
        engine,
        ReleaseInputs(
            actor_org_id=principal.org_id,
            actor_roles=frozenset(r.value for r in principal.roles),
            sender_org_id=principal.org_id,
            recipient_org_id=data.recipient_org_id,
            subject_owner=subject.owner_org_id,
            purpose=data.purpose,
            legal_basis=CONSENT_BASIS,
            consent_id=data.consent_id,
            fields=[FieldRef(f.name, f.category) for f in envelope.fields],
        ),
        clock=clock,
    )
    if decision.denied:
        raise refusal(decision)
    now = clock.now()
    referral = Referral(
        id=uuid.uuid4(),
        sender_org_id=principal.org_id,
        recipient_org_id=data.recipient_org_id,
        subject_id=subject.id,
        consent_id=data.consent_id,
        purpose=data.purpose,
        services_requested=[s.value for s in data.services_requested],
        urgency=data.urgency.value,
        status=ReferralStatus.sent.value,
        envelope_id=envelope_id,
        envelope_header=envelope.header.to_json(),
        signature=envelope.signature,
        sender_roles=sorted(r.value for r in principal.roles),
        created_by=principal.label,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        request_sha256=fingerprint,
    )
    session.add(referral)
    await session.flush()
    session.add_all(
        ReferralField(referral_id=referral.id, **columns) for columns in sealed_columns(envelope)
    )
    await session.flush()
    warnings = await recipient_warnings(session, data.recipient_org_id)
    # The "sent" event and, on the timeline both parties see, each warning, citing the
    # same entry (docs/referrals.md), written with it at the commit.
    events = dataclasses.replace(
        timeline_row(referral.id, "sent", principal, clock), also=tuple(warnings)
    )
    entry = await stage(
        session,
        AuditEvent(
            "referral.sent",
            principal,
            subject_ref=str(subject.id),
            counterpart_org_id=data.recipient_org_id,
            details={
                "referral_id": str(referral.id),
                "envelope_id": envelope_id,
                "consent_id": str(data.consent_id),
                "purpose": data.purpose,
                "fields": [{"name": f.name, "category": f.category} for f in envelope.fields],
                **({"recipient_warnings": warnings} if warnings else {}),
                **decision_facts(decision),
            },
        ),
        clock=clock,
        citing=events,
    )
    await notify(
        session, referral, EventType.referral_sent, referral.status, now, urgency=referral.urgency
    )
    return referral, Sent(entry, events)


def timeline_row(
    referral_id: uuid.UUID,
    event: str,
    principal: Principal | None,
    clock: Clock,
    detail: str | None = None,
) -> CitingRow:
    """A timeline event, to be written with the audit entry it cites (`append`)."""
    return CitingRow(
        _EVENTS,
        {
            "referral_id": referral_id,
            "at": clock.now(),
            "event": event,
            "actor": principal.label if principal else "system",
            "actor_org_id": principal.org_id if principal else None,
            "detail": detail,
        },
    )


async def notify(
    session: AsyncSession,
    referral: Referral | DeliveryRow,
    kind: EventType,
    status: str,
    at: datetime,
    **extra: str,
) -> None:
    """Tell both parties of a state change, in its transaction (the outbox:
    service/events/outbox.py). Identifiers, the state and codes only."""
    await emit(
        session,
        kind=kind,
        to=(referral.sender_org_id, referral.recipient_org_id),
        object_type="referral",
        object_id=referral.id,
        data={
            "referral_id": str(referral.id),
            "status": status,
            "sender_org": str(referral.sender_org_id),
            "recipient_org": str(referral.recipient_org_id),
            **extra,
        },
        at=at,
    )


async def record_event(
    session: AsyncSession,
    referral_id: uuid.UUID,
    event: str,
    principal: Principal | None,
    seq: int | None,
    clock: Clock,
    detail: str | None = None,
) -> None:
    # A driver insert (service/db/direct.py); the flush first writes what the caller
    # changed through the ORM, such as a referral added in this transaction.
    await session.flush()
    row = timeline_row(referral_id, event, principal, clock, detail)
    await direct.execute(session, _INSERT_EVENT, {**row.values, "audit_seq": seq})


async def list_visible(
    session: AsyncSession,
    *,
    principal: Principal,
    box: str,
    status: ReferralStatus | None,
    page: PageRequest,
) -> list[Referral]:
    column = Referral.sender_org_id if box == "sent" else Referral.recipient_org_id
    stmt = visible_referrals(principal).where(column == principal.org_id)
    if status is not None:
        stmt = stmt.where(Referral.status == status.value)
    if page.after is not None:
        stmt = stmt.where(
            or_(
                Referral.created_at < page.after.at,
                (Referral.created_at == page.after.at) & (Referral.id < page.after.id),
            )
        )
    stmt = stmt.order_by(Referral.created_at.desc(), Referral.id.desc()).limit(page.limit + 1)
    return list((await session.scalars(stmt)).all())


_EVENTS = Base.metadata.tables[ReferralEvent.__tablename__]
# On the driver (service/db/direct.py): one per transition and sent referral (a
# delivery's event goes with its audit entry, `timeline_row`).
_INSERT_EVENT = DirectStatement(
    insert(_EVENTS),
    keys=("referral_id", "at", "event", "actor", "actor_org_id", "detail", "audit_seq"),
)
_FIELDS_OF = (
    select(ReferralField)
    .where(ReferralField.referral_id.in_(bindparam("ids", expanding=True)))
    .order_by(ReferralField.referral_id, ReferralField.name)
)


async def fields_of(
    session: AsyncSession, referral_ids: Sequence[uuid.UUID]
) -> list[ReferralField]:
    return list((await session.scalars(_FIELDS_OF, {"ids": list(referral_ids)})).all())


async def timeline_of(
    session: AsyncSession, referral_ids: Sequence[uuid.UUID]
) -> list[ReferralEvent]:
    stmt = (
        select(ReferralEvent)
        .where(ReferralEvent.referral_id.in_(list(referral_ids)))
        .order_by(ReferralEvent.id)
    )
    return list((await session.scalars(stmt)).all())


# (action, party allowed, states it may start from, state it leads to)
TRANSITIONS: Final[dict[str, tuple[str, frozenset[ReferralStatus], ReferralStatus]]] = {
    "accept": ("recipient", frozenset({ReferralStatus.delivered}), ReferralStatus.accepted),
    "decline": (
        "recipient",
        frozenset({ReferralStatus.sent, ReferralStatus.delivered}),
        ReferralStatus.declined,
    ),
    "close": ("recipient", frozenset({ReferralStatus.accepted}), ReferralStatus.closed),
    "withdraw": ("sender", frozenset({ReferralStatus.sent}), ReferralStatus.withdrawn),
}


async def transition(
    session: AsyncSession,
    *,
    principal: Principal,
    referral_id: uuid.UUID,
    action: str,
    clock: Clock,
    decline_reason: str | None = None,
    outcome: str | None = None,
) -> Referral:
    party, sources, target = TRANSITIONS[action]
    referral = await get_visible(session, principal=principal, referral_id=referral_id, lock=True)
    org = referral.recipient_org_id if party == "recipient" else referral.sender_org_id
    if principal.org_id != org or not principal.has_any(Role.caseworker, Role.supervisor):
        raise ForbiddenError(f"Only the {party}'s caseworkers and supervisors may {action}")
    if ReferralStatus(referral.status) not in sources:
        raise ConflictError(f"A referral that is {referral.status} cannot be {target.value}")
    referral.status = target.value
    referral.updated_at = clock.now()
    if decline_reason is not None:
        referral.decline_reason = decline_reason
    if outcome is not None:
        referral.outcome = outcome
    if target in (ReferralStatus.withdrawn, ReferralStatus.declined):
        await shred.shred_referral(session, referral, reason=target.value, clock=clock)
    entry = await append(
        session,
        AuditEvent(
            f"referral.{target.value}",
            principal,
            subject_ref=str(referral.subject_id),
            counterpart_org_id=(
                referral.sender_org_id if party == "recipient" else referral.recipient_org_id
            ),
            details={
                "referral_id": str(referral.id),
                **({"reason": decline_reason} if decline_reason else {}),
                **({"outcome": outcome} if outcome else {}),
            },
        ),
        clock=clock,
    )
    await record_event(session, referral.id, target.value, principal, entry.seq, clock)
    await notify(
        session,
        referral,
        EventType(f"referral.{target.value}"),
        referral.status,
        referral.updated_at,
        **({"reason": decline_reason} if decline_reason else {}),
        **({"outcome": outcome} if outcome else {}),
    )
    return referral
