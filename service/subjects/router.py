"""HTTP endpoints for subjects (API.md "Subjects and consent")."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, status

from service.auth.dependencies import AppClock, CaseStaff, CurrentPrincipal, DbSession
from service.http_errors import ALL_PROBLEMS
from service.subjects import service as subject_service
from service.subjects.models import Subject
from service.subjects.schemas import (
    DisclosureAccount,
    DisclosureAccounting,
    SubjectCreate,
    SubjectRead,
)

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
    principal: CaseStaff, session: DbSession, clock: AppClock, body: SubjectCreate | None = None
) -> SubjectRead:
    subject = await subject_service.create(
        session, principal=principal, data=body or SubjectCreate(), clock=clock
    )
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
    subject_id: uuid.UUID, principal: CaseStaff, session: DbSession
) -> DisclosureAccounting:
    """Every disclosure about this subject, from the audit log: who received which
    categories, when, for what purpose and on what legal basis."""
    subject, rows = await subject_service.disclosures(
        session, principal=principal, subject_id=subject_id
    )
    items = []
    for entry, org in rows:
        details = json.loads(entry.body).get("details", {})
        items.append(
            DisclosureAccount(
                seq=entry.seq,
                at=entry.at,
                recipient_org_id=entry.counterpart_org_id,
                recipient_name=org.name if org else None,
                categories=sorted(set(details.get("categories", []))),
                purpose=details.get("purpose"),
                legal_basis=details.get("legal_basis"),
            )
        )
    return DisclosureAccounting(subject_id=subject.id, items=items)
