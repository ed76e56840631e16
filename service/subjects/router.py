"""HTTP endpoints for subjects (API.md "Subjects and consent")."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Request, Response, status

from service.auth.dependencies import (
    AccessLinkLimit,
    CaseStaff,
    CaseStaffOrSurvivor,
    CurrentPrincipal,
    Supervisor,
)
from service.idempotency import service as idempotency
from service.organizations import visibility
from service.subjects import access_links, erasure
from service.subjects import service as subject_service
from service.subjects.models import Subject
from service.subjects.schemas import (
    AccessLink,
    AccessLinkCreate,
    AccessLinkRefusal,
    AccessLinkRefusalPage,
    DisclosureAccount,
    DisclosureAccounting,
    ErasureReason,
    SubjectCreate,
    SubjectErase,
    SubjectErasure,
    SubjectRead,
)
from service.web.deps import AppClock, DbSession
from service.web.params import IdempotencyKey, Pages
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/subjects", tags=["subjects"])


def subject_read(subject: Subject) -> SubjectRead:
    return SubjectRead(
        id=subject.id,
        owner_org_id=subject.owner_org_id,
        is_minor=subject.is_minor,
        created_at=subject.created_at,
    )


@router.post("", status_code=status.HTTP_201_CREATED, responses=ALL_PROBLEMS)
async def create_subject(
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
    response: Response,
    body: SubjectCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> SubjectRead:
    """A subject: a random id for a person your organization serves; no identifying
    data. With an `Idempotency-Key`, a retry returns the first subject (200)."""
    data = body or SubjectCreate()
    subject, created = await idempotency.once(
        session,
        principal=principal,
        key=idempotency_key,
        route="POST /v1/subjects",
        body=data.model_dump(mode="json"),
        create=lambda: subject_service.create(session, principal=principal, data=data, clock=clock),
        load=lambda earlier: subject_service.get_owned(
            session, principal=principal, subject_id=earlier
        ),
        id_of=lambda subject: subject.id,
        clock=clock,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return subject_read(subject)


@router.get("/{subject_id}", responses=ALL_PROBLEMS)
async def get_subject(
    subject_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> SubjectRead:
    return subject_read(
        await subject_service.get_owned(session, principal=principal, subject_id=subject_id)
    )


@router.get("/{subject_id}/disclosures", responses=ALL_PROBLEMS)
async def get_disclosures(
    subject_id: uuid.UUID,
    who: CaseStaffOrSurvivor,
    session: DbSession,
    clock: AppClock,
    request: Request,
) -> DisclosureAccounting:
    """Every disclosure about this subject, from the audit log: who received which
    categories, when, for what purpose and on what legal basis."""
    subject, rows = await subject_service.disclosures(
        session,
        who=who,
        subject_id=subject_id,
        at=clock.now(),
        pseudonyms=visibility.pseudonym_key(request.app.state.keyring.cursor_secret),
    )
    await subject_service.record_link_use(session, who=who, what="disclosures", clock=clock)
    items = []
    for entry, recipient, org in rows:
        details = json.loads(entry.body).get("details", {})
        items.append(
            DisclosureAccount(
                seq=entry.seq,
                at=entry.at,
                recipient_org_id=recipient,
                recipient_name=org.name if org else None,
                categories=sorted(set(details.get("categories", []))),
                purpose=details.get("purpose"),
                legal_basis=details.get("legal_basis"),
            )
        )
    return DisclosureAccounting(subject_id=subject.id, items=items)


@router.post("/{subject_id}/erase", responses=ALL_PROBLEMS)
async def erase_subject(
    subject_id: uuid.UUID,
    body: SubjectErase,
    principal: Supervisor,
    session: DbSession,
    clock: AppClock,
) -> SubjectErasure:
    """Erase the subject (docs/erasure.md): every ciphertext and sealed key about it
    destroyed, its consents revoked, its access links ended, nothing new created for
    it, every earlier recipient told to destroy its copies (`subject.erased`).
    Metadata, audit entries and the accounting of disclosures stay. Idempotent: a
    second call answers the first erasure and changes nothing."""
    subject = await erasure.erase(
        session, principal=principal, subject_id=subject_id, reason=body.reason, clock=clock
    )
    # erase() sets both, and a second call finds them set.
    assert subject.erased_at is not None  # noqa: S101
    assert subject.erase_reason is not None  # noqa: S101
    return SubjectErasure(
        subject_id=subject.id,
        erased_at=subject.erased_at,
        reason=ErasureReason(subject.erase_reason),
    )


@router.post(
    "/{subject_id}/access-links",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
    dependencies=[AccessLinkLimit],
)
async def create_access_link(
    subject_id: uuid.UUID,
    request: Request,
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
    body: AccessLinkCreate | None = None,
) -> AccessLink:
    """A link for the survivor (docs/survivor-pages.md): `url` opens their own pages
    once (a single-use code, valid until `code_expires_at`, exchanged for a session
    that lasts until `expires_at`); `token` reads their consents and disclosures and
    withdraws a consent through the API; nothing else. Its every use is audited."""
    settings = request.app.state.settings
    issued = await access_links.create(
        session,
        principal=principal,
        subject_id=subject_id,
        lifetime_seconds=(body or AccessLinkCreate()).lifetime_seconds,
        settings=settings,
        signer=request.app.state.keyring.survivor_token,
        clock=clock,
    )
    return AccessLink(
        id=issued.link.id,
        token=issued.token,
        expires_at=issued.link.expires_at,
        url=f"{settings.public_base_url or ''}/s/{issued.code}",
        code_expires_at=issued.link.code_expires_at,
    )


@router.get("/{subject_id}/access-link-refusals", responses=ALL_PROBLEMS)
async def list_access_link_refusals(
    subject_id: uuid.UUID, principal: CaseStaff, session: DbSession, pages: Pages
) -> AccessLinkRefusalPage:
    """Refused uses of the subject's access links, newest first (a used code, an
    expired or ended link, its token on a staff endpoint, another record): someone
    tried. From the audit log; the owner's case staff only."""
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id),
        "access-link-refusals",
        {"subject_id": str(subject_id)},
    )
    items, position = await access_links.refusals(
        session, principal=principal, subject_id=subject_id, page=pages.page(binding)
    )
    return AccessLinkRefusalPage(
        items=[
            AccessLinkRefusal(at=r.at, link_id=r.link_id, reason=r.reason, audit_seq=r.audit_seq)
            for r in items
        ],
        next_cursor=pages.next_cursor(position, binding),
    )


links_router = APIRouter(prefix="/v1/access-links", tags=["subjects"])


@links_router.delete(
    "/{access_link_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ALL_PROBLEMS
)
async def revoke_access_link(
    access_link_id: uuid.UUID, principal: CaseStaff, session: DbSession, clock: AppClock
) -> None:
    """End a survivor access link before it expires: its token, its unused code and
    its session stop working on their next request. Audited; idempotent."""
    await access_links.revoke(session, principal=principal, link_id=access_link_id, clock=clock)
