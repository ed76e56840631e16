"""HTTP endpoints for referrals (API.md "Referrals")."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from service.auth.dependencies import CaseStaff, CurrentPrincipal
from service.disclosures.schemas import DeliveryRead
from service.organizations.schemas import Service
from service.policy.engine import PolicyEngine
from service.referrals import deliver as deliver_module
from service.referrals import service as referral_service
from service.referrals.models import (
    DeclineReason,
    Referral,
    ReferralEvent,
    ReferralField,
    ReferralStatus,
    Urgency,
)
from service.referrals.schemas import (
    CloseRequest,
    DeclineRequest,
    FieldLabel,
    ReferralCreate,
    ReferralPage,
    ReferralRead,
    TimelineEvent,
)
from service.web.deps import AppClock, DbSession
from service.web.pagination import next_position
from service.web.params import IdempotencyKey, Pages
from service.web.problems import ALL_PROBLEMS
from service.web.responses import DeferredJSONResponse

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])


def _engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy_engine
    return engine


def referral_read(
    referral: Referral, fields: list[ReferralField], events: list[ReferralEvent]
) -> ReferralRead:
    return _read(
        referral,
        fields,
        [
            TimelineEvent(
                at=e.at, event=e.event, actor_org_id=e.actor_org_id, audit_seq=e.audit_seq
            )
            for e in events
        ],
    )


def _read(
    referral: Referral, fields: list[ReferralField], timeline: list[TimelineEvent]
) -> ReferralRead:
    return ReferralRead(
        id=referral.id,
        status=ReferralStatus(referral.status),
        sender_org_id=referral.sender_org_id,
        recipient_org_id=referral.recipient_org_id,
        subject_id=referral.subject_id,
        consent_id=referral.consent_id,
        purpose=referral.purpose,
        services_requested=[Service(s) for s in referral.services_requested],
        urgency=Urgency(referral.urgency),
        envelope_id=referral.envelope_id,
        fields=[FieldLabel(name=f.name, category=f.category) for f in fields],
        created_at=referral.created_at,
        updated_at=referral.updated_at,
        delivered_at=referral.delivered_at,
        decline_reason=DeclineReason(referral.decline_reason) if referral.decline_reason else None,
        outcome=referral.outcome,
        shredded_at=referral.shredded_at,
        timeline=timeline,
        recipient_warnings=[
            e.event for e in timeline if e.event in referral_service.RECIPIENT_WARNINGS
        ],
    )


async def _read_many(session: DbSession, referrals: list[Referral]) -> list[ReferralRead]:
    ids = [r.id for r in referrals]
    fields = await referral_service.fields_of(session, ids)
    events = await referral_service.timeline_of(session, ids)
    return [
        referral_read(
            r,
            [f for f in fields if f.referral_id == r.id],
            [e for e in events if e.referral_id == r.id],
        )
        for r in referrals
    ]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ReferralRead, responses=ALL_PROBLEMS
)
async def create_referral(
    body: ReferralCreate,
    request: Request,
    response: Response,
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
    idempotency_key: IdempotencyKey = None,
) -> ReferralRead | Response:
    """Send a sealed envelope about a subject your organization owns. Every field is
    decided by policy now; if any would not be released the 422 lists each one with
    its reasons and policies, and nothing is stored."""
    referral, sent = await referral_service.create(
        session,
        principal=principal,
        engine=_engine(request),
        data=body,
        idempotency_key=idempotency_key,
        clock=clock,
    )
    if sent is None:
        response.status_code = status.HTTP_200_OK
        return (await _read_many(session, [referral]))[0]
    fields = await referral_service.fields_of(session, [referral.id])

    def build() -> object:
        # After the commit: the timeline events are written by it, citing the entry.
        timeline = [
            TimelineEvent(at=at, event=event, actor_org_id=org, audit_seq=seq)
            for at, event, org, seq in sent.timeline()
        ]
        return _read(referral, fields, timeline).model_dump(mode="json")

    return DeferredJSONResponse(build, status_code=status.HTTP_201_CREATED)


@router.get("", responses=ALL_PROBLEMS)
async def list_referrals(
    principal: CurrentPrincipal,
    session: DbSession,
    pages: Pages,
    box: Literal["sent", "received"],
    status_filter: Annotated[ReferralStatus | None, Query(alias="status")] = None,
) -> ReferralPage:
    """Metadata only, newest first."""
    filters = {"box": box, "status": status_filter.value if status_filter else None}
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id), "referrals", filters
    )
    page = pages.page(binding)
    rows = await referral_service.list_visible(
        session, principal=principal, box=box, status=status_filter, page=page
    )
    position = next_position(rows, page.limit)
    return ReferralPage(
        items=await _read_many(session, rows[: page.limit]),
        next_cursor=pages.next_cursor(position, binding),
    )


@router.get("/{referral_id}", responses=ALL_PROBLEMS)
async def get_referral(
    referral_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> ReferralRead:
    """Metadata and timeline, no ciphertext. 404 unless you are staff of one of the
    two organizations or an oversight auditor."""
    referral = await referral_service.get_visible(
        session, principal=principal, referral_id=referral_id
    )
    return (await _read_many(session, [referral]))[0]


@router.post("/{referral_id}/deliver", response_model=DeliveryRead, responses=ALL_PROBLEMS)
async def deliver_referral(
    referral_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> Response:
    """Decide every field now; release the allowed ones, list the withheld ones with
    reasons; the disclosure's audit entry is written in the same transaction."""
    build = await deliver_module.deliver(
        session, principal=principal, engine=_engine(request), referral_id=referral_id, clock=clock
    )
    # Built after the commit; build_delivery's dict is already the wire shape (tests
    # check it against DeliveryRead), serialized directly without a second validation.
    return DeferredJSONResponse(build)


async def _transition(
    session: DbSession,
    principal: CurrentPrincipal,
    clock: AppClock,
    referral_id: uuid.UUID,
    action: str,
    **extra: str,
) -> ReferralRead:
    referral = await referral_service.transition(
        session, principal=principal, referral_id=referral_id, action=action, clock=clock, **extra
    )
    return (await _read_many(session, [referral]))[0]


@router.post("/{referral_id}/accept", responses=ALL_PROBLEMS)
async def accept_referral(
    referral_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession, clock: AppClock
) -> ReferralRead:
    return await _transition(session, principal, clock, referral_id, "accept")


@router.post("/{referral_id}/decline", responses=ALL_PROBLEMS)
async def decline_referral(
    referral_id: uuid.UUID,
    body: DeclineRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> ReferralRead:
    """The recipient declines (a reason from the documented list is required); the
    encrypted fields are destroyed."""
    return await _transition(
        session, principal, clock, referral_id, "decline", decline_reason=body.reason.value
    )


@router.post("/{referral_id}/close", responses=ALL_PROBLEMS)
async def close_referral(
    referral_id: uuid.UUID,
    body: CloseRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> ReferralRead:
    return await _transition(session, principal, clock, referral_id, "close", outcome=body.outcome)


@router.post("/{referral_id}/withdraw", responses=ALL_PROBLEMS)
async def withdraw_referral(
    referral_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession, clock: AppClock
) -> ReferralRead:
    """The sender withdraws before delivery; sealed keys and ciphertexts are destroyed."""
    return await _transition(session, principal, clock, referral_id, "withdraw")
