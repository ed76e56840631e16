"""A referral's delivery: how it reads its rows, and what it marks, around the
one door (service/disclosures/release.py), which decides, splits, audits and
builds the body after the commit. A second delivery decides and is audited again.

The referral, its sealed fields and its consent's terms are read in one
driver-level statement under the policy lock held shared, so deliveries run side
by side (service/audit/ordering.py); the first delivery marks when each field was
first released (the retention clock starts) and the referral as delivered, and the
timeline event cites the disclosure's entry.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import CitingRow
from service.audit.ordering import share_policy
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.consents.in_force import TERMS_COLUMNS, terms_outerjoin
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base
from service.disclosures.release import Body, Disclosure, Outcome, release
from service.envelopes.stored import StoredField, header_from_json
from service.errors import ConflictError, ForbiddenError, NotFoundError
from service.events.catalog import EventType
from service.policy.engine import PolicyEngine
from service.referrals import service as referral_service
from service.referrals.models import Referral, ReferralField, ReferralStatus
from service.referrals.service import VISIBLE_WHERE, DeliveryRow

DELIVERABLE: Final = frozenset(
    {ReferralStatus.sent, ReferralStatus.delivered, ReferralStatus.accepted}
)


_FIELDS: Final = Base.metadata.tables[ReferralField.__tablename__]
_REFERRALS: Final = Base.metadata.tables[Referral.__tablename__]
_REFERRAL_COLUMNS: Final = [_REFERRALS.c[name] for name in DeliveryRow._fields]
_FIELD_COLUMNS: Final = [_FIELDS.c[f.name] for f in dataclasses.fields(StoredField)]
_R, _T = len(_REFERRAL_COLUMNS), len(TERMS_COLUMNS)


def _null(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(null(), column.type)


def _labelled(prefix: str, columns: Sequence[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
    return [column.label(f"{prefix}{i}") for i, column in enumerate(columns)]


def _delivery_read(where: Sequence[ColumnElement[bool]]) -> DirectStatement:
    """Everything a delivery reads, in one statement (one round trip), after it took
    the policy lock (so under it, with one snapshot): a first row with the referral
    and its consent's terms, if `where` lets the caller see it, then one row per
    sealed field, by name. Rows are [kind, referral..., terms..., field...], the
    columns of the other kind NULL."""
    referral = select(
        literal_column("0", Integer).label("kind"),
        *_labelled("r", _REFERRAL_COLUMNS),
        *_labelled("t", TERMS_COLUMNS),
        *_labelled("f", [_null(c) for c in _FIELD_COLUMNS]),
    ).select_from(terms_outerjoin(_REFERRALS, _REFERRALS.c.consent_id))
    fields = select(
        literal_column("1", Integer),
        *(_null(c) for c in _REFERRAL_COLUMNS),
        *(_null(c) for c in TERMS_COLUMNS),
        *_FIELD_COLUMNS,
    ).where(
        _FIELDS.c.referral_id == bindparam("referral_id"),
        select(_REFERRALS.c.id).where(*where).exists(),  # nothing for one who may not see it
    )
    both = union_all(referral.where(*where), fields)
    return DirectStatement(both.order_by(both.selected_columns.kind, both.selected_columns.f0))


_READS: Final = {rule: _delivery_read(where) for rule, where in VISIBLE_WHERE.items()}


class DeliveryInputs(NamedTuple):
    referral: DeliveryRow
    fields: list[StoredField]
    consent_terms: tuple[Any, ...]


async def read_for_delivery(
    session: AsyncSession, *, principal: Principal, referral_id: uuid.UUID
) -> DeliveryInputs:
    """The referral if `principal` may see it (else 404), its sealed fields by name
    and its consent's terms, as plain values (no entity, identity map or flush), read
    under the policy lock held shared.

    No row lock: every other writer of a referral (transitions, the sweep, a
    revocation's shredding) and of a consent holds the policy lock exclusively
    (`lock_head`), so none runs beside a delivery; deliveries of the same referral
    run side by side and meet only at the append, and the first delivery's change is
    guarded by the state it changes (`set_delivered`)."""
    rule = referral_service.audience(principal)
    await share_policy(session)
    params = {"referral_id": referral_id, "org_id": principal.org_id}
    rows = await direct.fetch(session, _READS[rule], params)
    if not rows or rows[0][0] != 0:
        raise NotFoundError()
    first = rows[0]
    return DeliveryInputs(
        referral=DeliveryRow(*first[1 : 1 + _R]),
        fields=[StoredField(*row[1 + _R + _T :]) for row in rows[1:]],
        consent_terms=tuple(first[1 + _R : 1 + _R + _T]),
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
) -> Body:
    """Release through the door (service/disclosures/release.py); return what builds
    the body. The caller builds it only after the transaction commits."""
    referral, rows, consent_terms = await read_for_delivery(
        session, principal=principal, referral_id=referral_id
    )
    if principal.org_id != referral.recipient_org_id or not principal.has_any(
        Role.caseworker, Role.supervisor
    ):
        raise ForbiddenError("Only the recipient's caseworkers and supervisors may deliver")
    if ReferralStatus(referral.status) not in DELIVERABLE:
        raise ConflictError(f"A referral that is {referral.status} cannot be delivered")

    async def mark(outcome: Outcome) -> CitingRow:
        # The first delivery's own changes: their row locks come before the append
        # queue (service/audit/ordering.py).
        first = [r.name for r in rows if r.name in outcome.released and r.released_at is None]
        await mark_released(session, referral.id, first, outcome.at)
        # The first delivery changes the referral (and tells both parties); a later
        # one only adds a timeline event.
        if referral.status == ReferralStatus.sent.value and await referral_service.set_delivered(
            session, referral.id, outcome.at
        ):
            await referral_service.notify(
                session,
                referral,
                EventType.referral_delivered,
                ReferralStatus.delivered.value,
                outcome.at,
            )
        event = "delivered" if outcome.released else "delivered_withheld"
        # The timeline event cites the entry, and is written with it.
        return referral_service.timeline_row(referral.id, event, principal, clock)

    return await release(
        session,
        Disclosure(
            sender_org_id=referral.sender_org_id,
            sender_roles=frozenset(referral.sender_roles),
            recipient_org_id=referral.recipient_org_id,
            subject_id=referral.subject_id,
            purpose=referral.purpose,
            legal_basis=referral_service.CONSENT_BASIS,
            consent_id=referral.consent_id,
            rows=rows,
            header=header_from_json(referral.envelope_header),
            signature=referral.signature,
            details={"referral_id": str(referral.id)},
            consent_terms=consent_terms,
        ),
        principal=principal,
        engine=engine,
        clock=clock,
        mark=mark,
    )
