"""HTTP endpoints for consent grants (API.md "Subjects and consent")."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from service.auth.dependencies import CaseStaff, CaseStaffOrSurvivor
from service.consents import followups, givers
from service.consents import service as consent_service
from service.consents.fhir import to_fhir
from service.consents.receipts import build_receipt, sign_receipt
from service.consents.schemas import (
    AllegedAbuserCreate,
    AllegedAbuserRead,
    ConsentCreate,
    ConsentList,
    ConsentRead,
    GivenBy,
    Method,
    RevokeRequest,
    WitnessRole,
)
from service.consents.service import ConsentState
from service.idempotency import service as idempotency
from service.organizations.models import Organization
from service.subjects import service as subject_service
from service.vocabulary import Vocabulary
from service.web.deps import AppClock, DbSession
from service.web.params import IdempotencyKey
from service.web.problems import ALL_PROBLEMS

router = APIRouter(tags=["consents"])


def consent_read(state: ConsentState, *, live: bool) -> ConsentRead:
    v = state.version
    return ConsentRead(
        id=v.id,
        grant_id=v.grant_id,
        version=v.version,
        supersedes=v.supersedes,
        subject_id=v.subject_id,
        owner_org_id=v.owner_org_id,
        recipients=[uuid.UUID(r) for r in v.recipients],
        purposes=list(v.purposes),
        categories=list(v.categories),
        fields=list(v.fields) if v.fields is not None else None,
        valid_from=v.valid_from,
        expires_at=v.expires_at,
        method=Method(v.method),
        language=v.language,
        evidence_sha256=v.evidence_sha256,
        witness_role=WitnessRole(v.witness_role) if v.witness_role else None,
        given_by=GivenBy(v.given_by),
        giver_ref=state.giver_ref,
        recorded_by=v.recorded_by,
        recorded_at=v.recorded_at,
        revoked_at=state.revocation.revoked_at if state.revocation else None,
        superseded=not state.latest,
        live=live,
    )


@router.post(
    "/v1/subjects/{subject_id}/consents",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
)
async def create_consent(
    subject_id: uuid.UUID,
    body: ConsentCreate,
    request: Request,
    response: Response,
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
    idempotency_key: IdempotencyKey = None,
) -> ConsentRead:
    """Record a grant on the survivor's behalf, or amend one (`supersedes`): a new
    immutable version; the old one is kept. With an `Idempotency-Key`, a retry
    returns the first version (200), never a second one."""
    vocabulary: Vocabulary = request.app.state.vocabulary

    async def create() -> ConsentState:
        row = await consent_service.create(
            session,
            principal=principal,
            subject_id=subject_id,
            data=body,
            vocabulary=vocabulary,
            clock=clock,
            max_days=request.app.state.settings.consent_max_days,
        )
        return ConsentState(row, None, latest=True, giver_ref=body.giver_ref)

    if idempotency_key is not None:
        # The subject's row before the policy and key locks `once` takes (the lock
        # order, service/audit/ordering.py); `create` reads it again, already locked.
        await subject_service.get_owned(
            session, principal=principal, subject_id=subject_id, share=True
        )
    state, created = await idempotency.once(
        session,
        principal=principal,
        key=idempotency_key,
        route=f"POST /v1/subjects/{subject_id}/consents",
        body=body.model_dump(mode="json"),
        create=create,
        load=lambda earlier: consent_service.get_state(
            session, principal=principal, consent_id=earlier
        ),
        id_of=lambda state: state.version.id,
        clock=clock,
        # An amendment is a change a release reads: the policy lock exclusively.
        exclusive=body.supersedes is not None,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return consent_read(state, live=state.live(clock.now()))


@router.get("/v1/subjects/{subject_id}/consents", responses=ALL_PROBLEMS)
async def list_consents(
    subject_id: uuid.UUID, who: CaseStaffOrSurvivor, session: DbSession, clock: AppClock
) -> ConsentList:
    """Every version of every grant for the subject, newest first. The survivor's
    access token sees exactly their own grants."""
    now = clock.now()
    states = await consent_service.list_for_subject(session, who=who, subject_id=subject_id)
    await subject_service.record_link_use(session, who=who, what="consents.list", clock=clock)
    return ConsentList(items=[consent_read(s, live=s.live(now)) for s in states])


@router.get("/v1/consents/{consent_id}", responses=ALL_PROBLEMS)
async def get_consent(
    consent_id: uuid.UUID, principal: CaseStaff, session: DbSession, clock: AppClock
) -> ConsentRead:
    state = await consent_service.get_state(session, principal=principal, consent_id=consent_id)
    return consent_read(state, live=state.live(clock.now()))


@router.post("/v1/consents/{consent_id}/revoke", responses=ALL_PROBLEMS)
async def revoke_consent(
    consent_id: uuid.UUID,
    body: RevokeRequest,
    who: CaseStaffOrSurvivor,
    session: DbSession,
    clock: AppClock,
) -> ConsentRead:
    """Withdraw the grant, effective immediately and irreversibly; idempotent. The
    survivor may withdraw their own consent with their access token."""
    state = await consent_service.revoke(
        session, principal=who, consent_id=consent_id, reason=body.reason, clock=clock
    )
    await subject_service.record_link_use(session, who=who, what="consent.revoke", clock=clock)
    return consent_read(state, live=state.live(clock.now()))


@router.get("/v1/consents/{consent_id}/receipt", responses=ALL_PROBLEMS)
async def get_receipt(
    consent_id: uuid.UUID, request: Request, principal: CaseStaff, session: DbSession
) -> dict[str, Any]:
    """A consent receipt to hand to the survivor, signed by the service's receipt key;
    `accord_client.receipts.verify_receipt` checks it offline."""
    state = await consent_service.get_state(session, principal=principal, consent_id=consent_id)
    owner = await session.get(Organization, state.version.owner_org_id)
    assert owner is not None  # noqa: S101 - a foreign key
    receipt = build_receipt(
        state, owner=owner, policy_version=request.app.state.policy_engine.version
    )
    return sign_receipt(receipt, request.app.state.keyring.receipt)


@router.get("/v1/consents/{consent_id}/fhir", responses=ALL_PROBLEMS)
async def get_fhir(
    consent_id: uuid.UUID, principal: CaseStaff, session: DbSession, clock: AppClock
) -> dict[str, Any]:
    """The grant as an HL7 FHIR R4 Consent resource."""
    state = await consent_service.get_state(session, principal=principal, consent_id=consent_id)
    return to_fhir(state, at=clock.now())


@router.get("/v1/consent-reviews", responses=ALL_PROBLEMS)
async def list_needing_review(
    principal: CaseStaff, session: DbSession, clock: AppClock
) -> ConsentList:
    """The organization's grants flagged `needs_review`: a collaboration agreement they
    relied on no longer permits one of their purposes. Record a new grant or revoke."""
    now = clock.now()
    items = []
    for version in await followups.needing_review(session, principal=principal):
        state = await consent_service.get_state(session, principal=principal, consent_id=version.id)
        items.append(consent_read(state, live=state.live(now)))
    return ConsentList(items=items)


@router.post(
    "/v1/subjects/{subject_id}/alleged-abusers",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
)
async def record_alleged_abuser(
    subject_id: uuid.UUID,
    body: AllegedAbuserCreate,
    principal: CaseStaff,
    session: DbSession,
    clock: AppClock,
) -> AllegedAbuserRead:
    """Record a person, by the opaque reference a grant's `giver_ref` would carry, as the
    subject's alleged abuser: they can never give consent for this subject, and grants
    they gave stop counting at once. Idempotent; there is no way to undo it."""
    row = await givers.record_alleged_abuser(
        session, principal=principal, subject_id=subject_id, data=body, clock=clock
    )
    return AllegedAbuserRead(
        subject_id=row.subject_id, person_ref=row.person_ref, recorded_at=row.recorded_at
    )
