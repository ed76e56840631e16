"""HTTP endpoints for collaborations (API.md)."""

from __future__ import annotations

import base64
import uuid

from fastapi import APIRouter, Request, status

from service.auth.dependencies import CurrentPrincipal, PlatformAdmin
from service.collaborations import service as collab_service
from service.collaborations import signatures as signature_service
from service.collaborations.models import (
    AgreementSignature,
    AgreementVersion,
    Collaboration,
    Membership,
)
from service.collaborations.schemas import (
    AgreementHistory,
    AgreementInput,
    AgreementRead,
    CollaborationCreate,
    CollaborationPage,
    CollaborationRead,
    FlowRead,
    MemberAdd,
    MemberRead,
    SignatureInput,
    SignatureRead,
    SignaturesWithdrawn,
)
from service.vocabulary import Vocabulary
from service.web.deps import AppClock, DbSession
from service.web.params import Pages
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/collaborations", tags=["collaborations"])


def _vocabulary(request: Request) -> Vocabulary:
    vocabulary: Vocabulary = request.app.state.vocabulary
    return vocabulary


def signature_read(signature: AgreementSignature) -> SignatureRead:
    return SignatureRead(
        version=signature.version,
        org_id=signature.org_id,
        key_id=signature.key_id,
        signature=base64.b64encode(signature.signature).decode(),
        signed_at=signature.signed_at,
        withdrawn_at=signature.withdrawn_at,
    )


def agreement_read(
    version: AgreementVersion, signatures: list[AgreementSignature] | None = None
) -> AgreementRead:
    return AgreementRead(
        version=version.version,
        flows=[FlowRead.model_validate(f) for f in version.flows],
        effective_from=version.effective_from,
        effective_to=version.effective_to,
        document_sha256=version.document_sha256,
        created_at=version.created_at,
        members=[uuid.UUID(m) for m in version.members] if version.members is not None else None,
        sha256=version.sha256,
        previous_sha256=version.previous_sha256,
        signatures=[signature_read(s) for s in signatures or []],
    )


def collaboration_read(
    collab: Collaboration, latest: AgreementVersion, members: list[Membership]
) -> CollaborationRead:
    return CollaborationRead(
        id=collab.id,
        name=collab.name,
        created_at=collab.created_at,
        agreement=agreement_read(latest),
        members=[MemberRead(org_id=m.org_id, added_at=m.added_at) for m in members],
    )


async def _read_one(session: DbSession, collab: Collaboration) -> CollaborationRead:
    versions = await collab_service.agreement_versions(session, [collab.id])
    members = await collab_service.active_members(session, [collab.id])
    return collaboration_read(collab, versions[collab.id][0], members[collab.id])


@router.post("", status_code=status.HTTP_201_CREATED, responses=ALL_PROBLEMS)
async def create_collaboration(
    body: CollaborationCreate,
    principal: PlatformAdmin,
    session: DbSession,
    clock: AppClock,
    request: Request,
) -> CollaborationRead:
    collab = await collab_service.create(
        session, principal=principal, data=body, vocabulary=_vocabulary(request), clock=clock
    )
    return await _read_one(session, collab)


@router.get("", responses=ALL_PROBLEMS)
async def list_collaborations(
    principal: CurrentPrincipal, session: DbSession, pages: Pages
) -> CollaborationPage:
    binding = pages.codec.binding(f"{principal.subject}|{principal.org_id}", "collaborations", {})
    rows, position = await collab_service.list_visible(
        session, principal=principal, page=pages.page(binding)
    )
    ids = [c.id for c in rows]
    versions = await collab_service.agreement_versions(session, ids)
    members = await collab_service.active_members(session, ids)
    return CollaborationPage(
        items=[collaboration_read(c, versions[c.id][0], members[c.id]) for c in rows],
        next_cursor=pages.next_cursor(position, binding),
    )


@router.get("/{collab_id}", responses=ALL_PROBLEMS)
async def get_collaboration(
    collab_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> CollaborationRead:
    collab = await collab_service.get_visible(session, principal=principal, collab_id=collab_id)
    return await _read_one(session, collab)


@router.get("/{collab_id}/agreements", responses=ALL_PROBLEMS)
async def get_agreement_history(
    collab_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> AgreementHistory:
    """Every version of the agreement, newest first, with who signed what and when."""
    collab = await collab_service.get_visible(session, principal=principal, collab_id=collab_id)
    versions = (await collab_service.agreement_versions(session, [collab.id]))[collab.id]
    signed = await signature_service.signatures_of(session, [v.id for v in versions])
    return AgreementHistory(items=[agreement_read(v, signed.get(v.id)) for v in versions])


@router.post(
    "/{collab_id}/agreements/signatures",
    status_code=status.HTTP_201_CREATED,
    responses=ALL_PROBLEMS,
)
async def sign_agreement(
    collab_id: uuid.UUID,
    body: SignatureInput,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> SignatureRead:
    """Countersign a version for the caller's organization (org_admin of a member).
    The signature is made in the client over the canonical bytes (docs/agreements.md)."""
    signature = await signature_service.sign(
        session,
        principal=principal,
        collab_id=collab_id,
        version=body.version,
        key_id=body.key_id,
        signature_b64=body.signature,
        clock=clock,
    )
    return signature_read(signature)


@router.delete("/{collab_id}/agreements/signatures/{org_id}", responses=ALL_PROBLEMS)
async def withdraw_signature(
    collab_id: uuid.UUID,
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> SignaturesWithdrawn:
    """Withdraw the organization's signatures (org_admin of that organization): its
    flows in this collaboration end for every later release; members are told."""
    withdrawn = await signature_service.withdraw(
        session, principal=principal, collab_id=collab_id, org_id=org_id, clock=clock
    )
    return SignaturesWithdrawn(items=[signature_read(s) for s in withdrawn])


@router.put("/{collab_id}/agreement", responses=ALL_PROBLEMS)
async def amend_agreement(
    collab_id: uuid.UUID,
    body: AgreementInput,
    principal: PlatformAdmin,
    session: DbSession,
    clock: AppClock,
    request: Request,
) -> CollaborationRead:
    """Propose a new agreement version; earlier versions are kept. It binds a pair of
    members only once both have signed it (docs/agreements.md)."""
    await collab_service.amend_agreement(
        session,
        principal=principal,
        collab_id=collab_id,
        agreement=body,
        vocabulary=_vocabulary(request),
        clock=clock,
    )
    collab = await collab_service.get_visible(session, principal=principal, collab_id=collab_id)
    return await _read_one(session, collab)


@router.post("/{collab_id}/members", status_code=status.HTTP_201_CREATED, responses=ALL_PROBLEMS)
async def add_member(
    collab_id: uuid.UUID,
    body: MemberAdd,
    principal: PlatformAdmin,
    session: DbSession,
    clock: AppClock,
) -> MemberRead:
    membership = await collab_service.add_member(
        session, principal=principal, collab_id=collab_id, org_id=body.org_id, clock=clock
    )
    return MemberRead(org_id=membership.org_id, added_at=membership.added_at)


@router.delete(
    "/{collab_id}/members/{org_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ALL_PROBLEMS
)
async def remove_member(
    collab_id: uuid.UUID,
    org_id: uuid.UUID,
    principal: PlatformAdmin,
    session: DbSession,
    clock: AppClock,
) -> None:
    await collab_service.remove_member(
        session, principal=principal, collab_id=collab_id, org_id=org_id, clock=clock
    )
