"""HTTP endpoints of the audit log (API.md "Audit"). Auditors see their own
organization's entries; the oversight sector sees all. Exports are audited."""

from __future__ import annotations

import base64
import json
import uuid
import weakref
from typing import Annotated, Any, Literal

from accord_client.checkpoint import verifier_key
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from service.audit import service as audit_service
from service.audit import tree
from service.audit.at_commit import stage
from service.audit.exports import ExportSlots
from service.audit.log import AuditEvent
from service.audit.service import EntryFilters
from service.auth.dependencies import CurrentPrincipal, require_role
from service.auth.principals import Principal, Role
from service.errors import rule_violation
from service.web.deps import AppClock, DbSession
from service.web.params import Rfc3339Time
from service.web.problems import ALL_PROBLEMS

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require_role(Role.auditor))]
# Checkpoints and consistency proofs reveal no entry (sizes and hashes only): every
# member's client reads them to witness the log (DESIGN.md guarantee 4), like the
# shared policies: any authenticated staff principal.
Witness = CurrentPrincipal


class CheckpointRead(BaseModel):
    origin: str
    tree_size: int
    root_hash: str
    public_key: str
    # The C2SP verifier key string "<origin>+<key hash>+<base64(0x01 || key)>", the
    # form `accord-audit --key` and other signed-note tools accept.
    verifier_key: str
    note: str


class ProofRead(BaseModel):
    tree_size: int
    proof: list[str]


class InclusionProofRead(ProofRead):
    seq: int
    leaf_hash: str


class ConsistencyProofRead(ProofRead):
    from_size: int


class EntryPage(BaseModel):
    items: list[dict[str, Any]]
    next_after_seq: int | None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


async def _filters(  # async: a plain def would run in the thread pool
    since: Rfc3339Time | None = None,
    until: Rfc3339Time | None = None,
    org: uuid.UUID | None = None,
    subject: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> EntryFilters:
    return EntryFilters(since=since, until=until, org=org, subject=subject, action=action)


Filters = Annotated[EntryFilters, Depends(_filters)]


@router.get("/checkpoint", responses=ALL_PROBLEMS)
async def get_checkpoint(
    request: Request, principal: Witness, session: DbSession
) -> CheckpointRead:
    """The latest checkpoint, signed by the service's audit key (C2SP tlog-checkpoint)."""
    signer = request.app.state.keyring.checkpoint
    origin = request.app.state.settings.audit_origin
    size = await tree.tree_size(session)
    note = await tree.signed_checkpoint_at(session, size, signer=signer, origin=origin)
    return CheckpointRead(
        origin=origin,
        tree_size=size,
        root_hash=_b64(await tree.root_at(session, size)),
        public_key=_b64(signer.public_key),
        verifier_key=verifier_key(origin, signer.public_key),
        note=note,
    )


async def _check_size(session: DbSession, size: int, path: str) -> None:
    if size > await tree.tree_size(session):
        raise rule_violation((path, "larger than the log"))


@router.get("/proof/inclusion", responses=ALL_PROBLEMS)
async def get_inclusion_proof(
    principal: Auditor,
    session: DbSession,
    seq: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int, Query(ge=1)],
) -> InclusionProofRead:
    await _check_size(session, tree_size, "/tree_size")
    if seq >= tree_size:
        raise rule_violation(("/seq", "must be smaller than tree_size"))
    proof = await tree.prove_inclusion(session, seq, tree_size)
    leaf = await tree.root_at_range(session, seq, seq + 1)
    return InclusionProofRead(
        seq=seq, tree_size=tree_size, leaf_hash=_b64(leaf), proof=[_b64(p) for p in proof]
    )


@router.get("/proof/consistency", responses=ALL_PROBLEMS)
async def get_consistency_proof(
    principal: Witness,
    session: DbSession,
    from_size: Annotated[int, Query(ge=0)],
    to_size: Annotated[int, Query(ge=0)],
) -> ConsistencyProofRead:
    await _check_size(session, to_size, "/to_size")
    if from_size > to_size:
        raise rule_violation(("/from_size", "must not exceed to_size"))
    proof = await tree.prove_consistency(session, from_size, to_size)
    return ConsistencyProofRead(
        from_size=from_size, tree_size=to_size, proof=[_b64(p) for p in proof]
    )


@router.get("/entries", responses=ALL_PROBLEMS)
async def get_entries(
    request: Request,
    principal: Auditor,
    session: DbSession,
    filters: Filters,
    after_seq: Annotated[int | None, Query(ge=-1)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> EntryPage:
    settings = request.app.state.settings
    if limit is not None and limit > settings.page_size_max:
        raise rule_violation(("/limit", f"at most {settings.page_size_max}"))
    size = limit or settings.page_size_default
    rows = await audit_service.list_entries(
        session, principal=principal, filters=filters, after_seq=after_seq, limit=size + 1
    )
    more = len(rows) > size
    rows = rows[:size]
    return EntryPage(
        items=[json.loads(r.body) for r in rows],
        next_after_seq=rows[-1].seq if more and rows else None,
    )


@router.get(
    "/export",
    responses={**ALL_PROBLEMS, 200: {"content": {"application/jsonl": {}, "text/csv": {}}}},
    response_class=StreamingResponse,
)
async def export(
    request: Request,
    principal: Auditor,
    session: DbSession,
    clock: AppClock,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    """Streamed in constant memory, ending (JSON Lines) with the signed checkpoint
    that covers it, then a trailer line that only a complete export has. The export
    itself is recorded in the log first. Over the concurrency caps: 429."""
    slot = _export_slots(request).acquire(principal)
    try:
        await _record_export(session, principal, filters, format, clock)
    except BaseException:
        slot.release()
        raise
    stream = audit_service.export_stream(
        request.app.state.sessionmaker,
        principal=principal,
        filters=filters,
        fmt=format,
        signer=request.app.state.keyring.checkpoint,
        origin=request.app.state.settings.audit_origin,
        on_end=slot.release,
    )
    # A stream that never starts (the commit failed, the client left) frees its slot
    # when it is dropped; the background task when the response was sent.
    weakref.finalize(stream, slot.release)
    media = "application/jsonl" if format == "jsonl" else "text/csv"
    return StreamingResponse(stream, media_type=media, background=BackgroundTask(slot.release))


def _export_slots(request: Request) -> ExportSlots:
    state = request.app.state
    slots: ExportSlots | None = getattr(state, "audit_export_slots", None)
    if slots is None:
        settings = state.settings
        slots = state.audit_export_slots = ExportSlots(
            total=settings.audit_export_max_concurrent,
            per_principal=settings.audit_export_max_per_principal,
        )
    return slots


async def _record_export(
    session: DbSession, principal: Principal, filters: EntryFilters, fmt: str, clock: AppClock
) -> None:
    await stage(
        session,
        AuditEvent(
            action="audit.exported",
            actor=principal,
            details={
                "format": fmt,
                "all_organizations": audit_service.sees_everything(principal),
                "filters": {k: str(v) for k, v in vars(filters).items() if v is not None},
            },
        ),
        clock=clock,
    )
