"""HTTP endpoints for subjects (API.md "Subjects and consent")."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from service.auth.dependencies import AppClock, CaseStaff, CurrentPrincipal, DbSession
from service.http_errors import ALL_PROBLEMS
from service.subjects import service as subject_service
from service.subjects.models import Subject
from service.subjects.schemas import SubjectCreate, SubjectRead

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
