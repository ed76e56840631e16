"""Records requests, obligations and reviews over HTTP (API.md "Records requests")."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request, Response, status

from service.auth.dependencies import (
    CaseStaff,
    CurrentPrincipal,
    RecordsRequestLimit,
    Requester,
    Supervisor,
)
from service.disclosures.schemas import DeliveryRead
from service.policy.engine import PolicyEngine
from service.records_requests import deliver as deliver_module
from service.records_requests import duties, suspensions
from service.records_requests import service as request_service
from service.records_requests.models import (
    LegalBasis,
    Obligation,
    RecordsRequest,
    RecordsRequestField,
    Review,
)
from service.records_requests.schemas import (
    FieldLabel,
    ObligationDone,
    ObligationList,
    ObligationRead,
    PreliminaryItem,
    RecordsRequestCreate,
    RecordsRequestPage,
    RecordsRequestRead,
    RespondRequest,
    ReviewClose,
    ReviewList,
    ReviewRead,
    SuspensionCreate,
    SuspensionRead,
)
from service.web.deps import AppClock, DbSession
from service.web.pagination import next_position
from service.web.params import Pages
from service.web.problems import ALL_PROBLEMS
from service.web.responses import DeferredJSONResponse

router = APIRouter(tags=["records requests"])


def _engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy_engine
    return engine


async def _read(session: DbSession, row: RecordsRequest) -> RecordsRequestRead:
    return (await _read_many(session, [row]))[0]


async def _read_many(session: DbSession, rows: list[RecordsRequest]) -> list[RecordsRequestRead]:
    fields = await request_service.fields_by_request(session, [r.id for r in rows])
    return [_read_one(row, fields.get(row.id, [])) for row in rows]


def _read_one(row: RecordsRequest, fields: list[RecordsRequestField]) -> RecordsRequestRead:
    return RecordsRequestRead(
        id=row.id,
        requester_org_id=row.requester_org_id,
        holder_org_id=row.holder_org_id,
        subject_ref=row.subject_ref,
        categories=row.categories,
        purpose=row.purpose,
        legal_basis=LegalBasis(row.legal_basis),
        legal_reference=row.legal_reference,
        document_sha256=row.document_sha256,
        justification=row.justification,
        preliminary=[PreliminaryItem.model_validate(p) for p in row.preliminary],
        policy_version=row.policy_version,
        status=row.status,
        created_at=row.created_at,
        responded_at=row.responded_at,
        response_note=row.response_note,
        consent_id=row.consent_id,
        fields=[FieldLabel(name=f.name, category=f.category) for f in fields],
        delivered_at=row.delivered_at,
    )


@router.post(
    "/v1/records-requests",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
    dependencies=[RecordsRequestLimit],
)
async def create_records_request(
    body: RecordsRequestCreate,
    request: Request,
    principal: Requester,
    session: DbSession,
    clock: AppClock,
) -> RecordsRequestRead:
    """Ask a holder for categories of records. `preliminary` gives, per category,
    allowed / needs_consent / never with the deciding policies, from policy alone: it
    is the same whether or not the holder serves such a person."""
    row = await request_service.create(
        session, principal=principal, engine=_engine(request), data=body, clock=clock
    )
    return await _read(session, row)


@router.get("/v1/records-requests", responses=ALL_PROBLEMS)
async def list_records_requests(
    principal: CurrentPrincipal, session: DbSession, pages: Pages, box: Literal["made", "received"]
) -> RecordsRequestPage:
    """Requests your organization made, or received as holder; newest first."""
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id), "records-requests", {"box": box}
    )
    page = pages.page(binding)
    rows = await request_service.list_visible(session, principal=principal, box=box, page=page)
    return RecordsRequestPage(
        items=await _read_many(session, rows[: page.limit]),
        next_cursor=pages.next_cursor(next_position(rows, page.limit), binding),
    )


@router.get("/v1/records-requests/{request_id}", responses=ALL_PROBLEMS)
async def get_records_request(
    request_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> RecordsRequestRead:
    row = await request_service.get_visible(session, principal=principal, request_id=request_id)
    return await _read(session, row)


@router.post("/v1/records-requests/{request_id}/respond", responses=ALL_PROBLEMS)
async def respond_to_records_request(
    request_id: uuid.UUID,
    body: RespondRequest,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> RecordsRequestRead:
    """The holder answers: `release` with an envelope sealed to the requester (every
    field decided by policy; any refusal is a 422 listing each field), or `refuse`
    with a note."""
    settings = request.app.state.settings
    row = await request_service.respond(
        session,
        principal=principal,
        engine=_engine(request),
        request_id=request_id,
        data=body,
        clock=clock,
        review_within=timedelta(hours=settings.review_due_hours),
    )
    return await _read(session, row)


@router.post(
    "/v1/records-requests/{request_id}/deliver",
    response_model=DeliveryRead,
    responses=ALL_PROBLEMS,
)
async def deliver_records_request(
    request_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> Response:
    """As referral delivery: decided again now, audited in the same transaction, the
    body built after the commit."""
    build = await deliver_module.deliver(
        session,
        principal=principal,
        engine=_engine(request),
        request_id=request_id,
        clock=clock,
        notify_within=timedelta(days=request.app.state.settings.obligation_notify_days),
    )
    return DeferredJSONResponse(build)


@router.post(
    "/v1/records-requests/{request_id}/suspension",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
)
async def suspend_accounting(
    request_id: uuid.UUID,
    body: SuspensionCreate,
    request: Request,
    principal: Requester,
    session: DbSession,
    clock: AppClock,
) -> SuspensionRead:
    """The requesting agency's written request (its SHA-256) to keep this request's
    disclosures out of the survivor's accounting until `until`; audited, and it ends
    by itself."""
    row = await suspensions.suspend_accounting(
        session,
        principal=principal,
        request_id=request_id,
        data=body,
        clock=clock,
        max_days=request.app.state.settings.accounting_suspension_max_days,
    )
    return SuspensionRead(
        id=row.id,
        request_id=row.request_id,
        document_sha256=row.document_sha256,
        created_at=row.created_at,
        until=row.until,
    )


def _obligation_read(row: Obligation, clock: AppClock) -> ObligationRead:
    return ObligationRead(
        id=row.id,
        holder_org_id=row.holder_org_id,
        request_id=row.request_id,
        kind=row.kind,
        created_at=row.created_at,
        due_at=row.due_at,
        overdue=duties.overdue(row.due_at, row.done_at, clock.now()),
        done_at=row.done_at,
        done_how=row.done_how,
    )


@router.get("/v1/obligations", responses=ALL_PROBLEMS)
async def list_obligations(
    principal: CurrentPrincipal, session: DbSession, clock: AppClock, include_done: bool = False
) -> ObligationList:
    """Open obligations of your organization (staff); overdue ones (auditors)."""
    rows = await duties.list_obligations(
        session, principal=principal, clock=clock, include_done=include_done
    )
    return ObligationList(items=[_obligation_read(r, clock) for r in rows])


@router.post("/v1/obligations/{obligation_id}/done", responses=ALL_PROBLEMS)
async def obligation_done(
    obligation_id: uuid.UUID,
    body: ObligationDone,
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
) -> ObligationRead:
    """Record how and when the survivor was told."""
    row = await duties.mark_done(
        session, principal=principal, obligation_id=obligation_id, data=body, clock=clock
    )
    return _obligation_read(row, clock)


def _review_read(row: Review, clock: AppClock) -> ReviewRead:
    return ReviewRead(
        id=row.id,
        holder_org_id=row.holder_org_id,
        request_id=row.request_id,
        released_by=row.released_by,
        created_at=row.created_at,
        due_at=row.due_at,
        overdue=duties.overdue(row.due_at, row.closed_at, clock.now()),
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        finding=row.finding,
        survivor_notified=row.survivor_notified,
    )


@router.get("/v1/reviews", responses=ALL_PROBLEMS)
async def list_reviews(
    principal: Supervisor, session: DbSession, clock: AppClock, include_closed: bool = False
) -> ReviewList:
    """Emergency releases of your organization awaiting a supervisor's finding."""
    rows = await duties.list_reviews(session, principal=principal, include_closed=include_closed)
    return ReviewList(items=[_review_read(r, clock) for r in rows])


@router.post("/v1/reviews/{review_id}/close", responses=ALL_PROBLEMS)
async def close_review(
    review_id: uuid.UUID,
    body: ReviewClose,
    principal: Supervisor,
    session: DbSession,
    clock: AppClock,
) -> ReviewRead:
    """A finding by a supervisor other than the one who released; whether the
    survivor was told, and if not, why."""
    row = await duties.close_review(
        session, principal=principal, review_id=review_id, data=body, clock=clock
    )
    return _review_read(row, clock)
