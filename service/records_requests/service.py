"""Records requests (API.md "Records requests"): an investigator or prosecutor asks
a holder for categories of records; the holder answers with an envelope sealed to
the requester, or refuses; the requester delivers the answer, decided again at that
moment and audited in the same transaction (service/disclosures/decide.py).

Requests are visible to the staff of the two organizations only; everyone else gets
404. Free text (the justification, a refusal note) is stored for the other party to
read and never enters a log or an audit entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Final, Literal

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.audit.ordering import lock_policy, share_policy
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.disclosures.decide import ReleaseInputs, decide_at_release, decision_facts
from service.disclosures.errors import PolicyRefusedError, refusal
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
from service.organizations.models import Organization
from service.policy.engine import PolicyEngine
from service.policy.inputs import FieldRef
from service.records_requests import duties
from service.records_requests.announce import notify
from service.records_requests.answer import check_answer
from service.records_requests.models import (
    LegalBasis,
    RecordsRequest,
    RecordsRequestField,
    RequestStatus,
)
from service.records_requests.preliminary import preliminary
from service.records_requests.schemas import (
    Decision,
    RecordsRequestCreate,
    RespondRequest,
)
from service.web.pagination import PageRequest

COMPELLED: Final = frozenset({LegalBasis.court_order, LegalBasis.subpoena})
NEEDS_DOCUMENT: Final = COMPELLED
NEEDS_REFERENCE: Final = COMPELLED | {LegalBasis.mandated_report}
HOLDER_STAFF: Final = (Role.caseworker, Role.supervisor)


def visible_requests(principal: Principal) -> Select[RecordsRequest]:
    return select(RecordsRequest).where(
        or_(
            RecordsRequest.requester_org_id == principal.org_id,
            RecordsRequest.holder_org_id == principal.org_id,
        )
    )


async def get_visible(
    session: AsyncSession,
    *,
    principal: Principal,
    request_id: uuid.UUID,
    lock: bool = False,
    release: bool = False,
) -> RecordsRequest:
    """The request if `principal` is its requester or holder, else 404. With `lock`,
    its row FOR UPDATE after the policy lock (service/audit/ordering.py): held
    exclusively for a change (an answer, a suspension), shared for a `release` (a
    delivery decides side by side with every other release; the row lock alone keeps
    two deliveries of this request from overlapping)."""
    stmt = visible_requests(principal).where(RecordsRequest.id == request_id)
    if lock:
        # Lock order: the policy lock, a consent grant's rows, this row.
        if release:
            await share_policy(session)
        else:
            await lock_policy(session)
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    found = (await session.scalars(stmt)).first()
    if found is None:
        raise NotFoundError()
    return found


def _check_create(data: RecordsRequestCreate) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    basis = data.legal_basis
    if basis in NEEDS_REFERENCE and not data.legal_reference:
        problems.append(ProblemItem("/legal_reference", f"required for {basis.value}"))
    if basis in NEEDS_DOCUMENT and not data.document_sha256:
        problems.append(ProblemItem("/document_sha256", f"required for {basis.value}"))
    if not data.justification.strip():
        problems.append(ProblemItem("/justification", "a justification is required"))
    return problems


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    data: RecordsRequestCreate,
    clock: Clock,
) -> RecordsRequest:
    problems = _check_create(data)
    holder = await session.get(Organization, data.holder_org_id)
    if holder is None or not holder.active or holder.id == principal.org_id:
        problems.append(ProblemItem("/holder_org_id", "no such active organization"))
    if problems:
        raise RuleViolationError(errors=problems)
    items, version = await preliminary(
        session, requester=principal, engine=engine, data=data, clock=clock
    )
    now = clock.now()
    request = RecordsRequest(
        id=uuid.uuid4(),
        requester_org_id=principal.org_id,
        holder_org_id=data.holder_org_id,
        requested_by=principal.label,
        subject_ref=data.subject_ref,
        categories=list(dict.fromkeys(data.categories)),
        purpose=data.purpose,
        legal_basis=data.legal_basis.value,
        legal_reference=data.legal_reference,
        document_sha256=data.document_sha256,
        justification=data.justification,
        preliminary=[item.model_dump() for item in items],
        policy_version=version,
        status=RequestStatus.open.value,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    await session.flush()
    await stage(
        session,
        AuditEvent(
            "request.created",
            principal,
            counterpart_org_id=data.holder_org_id,
            details={
                "request_id": str(request.id),
                "categories": request.categories,
                "purpose": data.purpose,
                "legal_basis": data.legal_basis.value,
                "legal_reference": data.legal_reference,
                "document_sha256": data.document_sha256,
                "justification_given": True,
                "preliminary": {i.category: i.outcome for i in items},
                "policy_version": version,
            },
        ),
        clock=clock,
    )
    await notify(session, request, EventType.records_request_created, now)
    return request


async def list_visible(
    session: AsyncSession,
    *,
    principal: Principal,
    box: Literal["made", "received"],
    page: PageRequest,
) -> list[RecordsRequest]:
    column = RecordsRequest.requester_org_id if box == "made" else RecordsRequest.holder_org_id
    stmt = select(RecordsRequest).where(column == principal.org_id)
    if page.after is not None:
        stmt = stmt.where(
            or_(
                RecordsRequest.created_at < page.after.at,
                (RecordsRequest.created_at == page.after.at) & (RecordsRequest.id < page.after.id),
            )
        )
    stmt = stmt.order_by(RecordsRequest.created_at.desc(), RecordsRequest.id.desc())
    return list((await session.scalars(stmt.limit(page.limit + 1))).all())


async def fields_of(session: AsyncSession, request_id: uuid.UUID) -> list[RecordsRequestField]:
    return (await fields_by_request(session, [request_id])).get(request_id, [])


async def fields_by_request(
    session: AsyncSession, request_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[RecordsRequestField]]:
    """The answer fields of several requests in one query, by request, in name order."""
    stmt = (
        select(RecordsRequestField)
        .where(RecordsRequestField.request_id.in_(list(request_ids)))
        .order_by(RecordsRequestField.request_id, RecordsRequestField.name)
    )
    out: dict[uuid.UUID, list[RecordsRequestField]] = {}
    for row in (await session.scalars(stmt)).all():
        out.setdefault(row.request_id, []).append(row)
    return out


async def respond(
    session: AsyncSession,
    *,
    principal: Principal,
    engine: PolicyEngine,
    request_id: uuid.UUID,
    data: RespondRequest,
    clock: Clock,
    review_within: timedelta,
) -> RecordsRequest:
    request = await get_visible(session, principal=principal, request_id=request_id, lock=True)
    if principal.org_id != request.holder_org_id or not principal.has_any(*HOLDER_STAFF):
        raise ForbiddenError("Only the holder's caseworkers and supervisors may answer")
    if request.status != RequestStatus.open.value:
        raise ConflictError(f"This request was already answered ({request.status})")
    basis = LegalBasis(request.legal_basis)
    if data.decision is Decision.refuse:
        if not (data.note and data.note.strip()):
            raise RuleViolationError(errors=[ProblemItem("/note", "say why, for the requester")])
        return await _close(session, principal, request, RequestStatus.refused, data, clock)
    if basis is LegalBasis.emergency and not principal.has_any(Role.supervisor):
        raise ForbiddenError("Only a supervisor may release in an emergency")
    envelope, subject_id = await check_answer(
        session, principal, request, data, engine.taxonomy.vocabulary
    )
    envelope_id = envelope_id_of(envelope)
    replayed = await session.scalars(
        select(RecordsRequest.id).where(RecordsRequest.envelope_id == envelope_id)
    )
    if replayed.first() is not None:
        raise RuleViolationError(errors=[ProblemItem("/envelope", "this envelope was sent")])
    decision = await decide_at_release(
        session,
        engine,
        ReleaseInputs(
            actor_org_id=principal.org_id,
            actor_roles=frozenset(r.value for r in principal.roles),
            sender_org_id=principal.org_id,
            recipient_org_id=request.requester_org_id,
            subject_owner=principal.org_id,
            purpose=request.purpose,
            legal_basis=basis.value,
            consent_id=data.consent_id,
            fields=[FieldRef(f.name, f.category) for f in envelope.fields],
            justification_given=True,
        ),
        clock=clock,
    )
    if decision.denied:
        raise refusal(decision)
    request.subject_id = subject_id
    request.consent_id = data.consent_id
    request.envelope_id = envelope_id
    request.envelope_header = envelope.header.to_json()
    request.signature = envelope.signature
    session.add_all(
        RecordsRequestField(request_id=request.id, **row) for row in sealed_columns(envelope)
    )
    await _close(
        session,
        principal,
        request,
        RequestStatus.released,
        data,
        clock,
        extra={
            "fields": [{"name": f.name, "category": f.category} for f in envelope.fields],
            **decision_facts(decision),
        },
    )
    await duties.open_review(
        session,
        request=request,
        principal=principal,
        obligations={o for f in decision.allowed for o in f.obligations},
        clock=clock,
        review_within=review_within,
    )
    return request


async def _close(
    session: AsyncSession,
    principal: Principal,
    request: RecordsRequest,
    status: RequestStatus,
    data: RespondRequest,
    clock: Clock,
    extra: dict[str, object] | None = None,
) -> RecordsRequest:
    now = clock.now()
    request.status = status.value
    request.responded_at = now
    request.responded_by = principal.label
    request.responder_roles = sorted(r.value for r in principal.roles)
    request.response_note = data.note
    request.updated_at = now
    await session.flush()
    await stage(
        session,
        AuditEvent(
            f"request.{status.value}",
            principal,
            subject_ref=str(request.subject_id) if request.subject_id else None,
            counterpart_org_id=request.requester_org_id,
            details={
                "request_id": str(request.id),
                "legal_basis": request.legal_basis,
                "note_given": bool(data.note),
                **(extra or {}),
            },
        ),
        clock=clock,
    )
    await notify(session, request, EventType.records_request_responded, now)
    return request


__all__ = [
    "PolicyRefusedError",
    "create",
    "fields_by_request",
    "fields_of",
    "get_visible",
    "list_visible",
    "respond",
    "visible_requests",
]
