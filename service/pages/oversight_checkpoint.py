"""The oversight page's checkpoint: the log's latest signed checkpoint, and whether
the log only grew since the previous checkpoint this viewer's page saw.

The previous checkpoint is the one in the viewer's cookie `accord_o_seen` (tree size
and root hash, authenticated with HMAC and bound to the viewer's organization and
subject, so neither the browser nor another officer on the same browser can move
it); on a first visit, the newest checkpoint the service signed and kept
(`audit_checkpoints`) below the current size, after checking its signature. The
check is the client library's: the checkpoint note's Ed25519 signature
(`accord_client.checkpoint.verify_checkpoint`) and the RFC 9162 consistency proof
(`accord_client.merkle.verify_consistency`), computed from the stored tree nodes
as `GET /v1/audit/proof/consistency` serves it. A checkpoint that verifies moves
the cookie forward; one that does not leaves it where it was, so the failure is
shown again on every visit until someone looks into it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from accord_client.checkpoint import CheckpointError, verifier_key, verify_checkpoint
from accord_client.merkle import verify_consistency
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit import tree
from service.audit.models import AuditCheckpoint
from service.auth.principals import Principal
from service.crypto import Signer
from service.pages.oversight_access import seal, unseal

SEEN_COOKIE = "accord_o_seen"
SEEN_SECONDS = 400 * 86400

Result = Literal["verified", "failed", "first", "empty"]
Source = Literal["page", "service"]


@dataclass(frozen=True)
class Seen:
    size: int
    root: bytes


@dataclass(frozen=True)
class CheckpointStatus:
    origin: str
    size: int
    root: str  # base64, as in the note
    note: str
    verifier_key: str
    result: Result
    # Why it failed: "signature", "shrunk" (fewer entries than seen), "proof".
    reason: str | None
    previous: Seen | None
    previous_source: Source | None

    @property
    def root_bytes(self) -> bytes:
        return base64.b64decode(self.root)

    @property
    def moves_cookie(self) -> bool:
        return self.result in ("verified", "first")


def _binding(principal: Principal) -> str:
    return f"{principal.org_id}/{principal.subject}"


def seen_cookie(key: bytes, principal: Principal, size: int, root: bytes) -> str:
    return seal(
        key,
        {"size": size, "root": base64.b64encode(root).decode("ascii"), "who": _binding(principal)},
    )


def read_seen(key: bytes, principal: Principal, cookie: str | None) -> Seen | None:
    payload: dict[str, Any] = unseal(key, cookie) or {}
    size, root, who = payload.get("size"), payload.get("root"), payload.get("who")
    if not isinstance(size, int) or not isinstance(root, str) or who != _binding(principal):
        return None
    try:
        raw = base64.b64decode(root, validate=True)
    except ValueError:
        return None
    return Seen(size, raw) if size >= 0 and len(raw) == 32 else None


async def _kept_before(
    session: AsyncSession, size: int, *, origin: str, public_key: bytes
) -> Seen | None:
    """The newest checkpoint the service kept below `size`, its note verified
    (CheckpointError if it does not verify or does not match its row)."""
    row = await session.scalar(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.size < size)
        .order_by(AuditCheckpoint.size.desc())
        .limit(1)
    )
    if row is None:
        return None
    kept = verify_checkpoint(row.note, name=origin, public_key=public_key, origin=origin)
    if kept.size != row.size or kept.root_hash != row.root_hash:
        raise CheckpointError("a kept checkpoint does not match its note")
    return Seen(kept.size, kept.root_hash)


async def checkpoint_status(
    session: AsyncSession, *, signer: Signer, origin: str, seen: Seen | None
) -> CheckpointStatus:
    size = await tree.tree_size(session)
    note = await tree.signed_checkpoint_at(session, size, signer=signer, origin=origin)
    key = verifier_key(origin, signer.public_key)

    def status(
        result: Result, reason: str | None, previous: Seen | None, source: Source | None
    ) -> CheckpointStatus:
        root = base64.b64encode(current.root_hash).decode("ascii") if current else ""
        return CheckpointStatus(origin, size, root, note, key, result, reason, previous, source)

    current = None
    try:
        current = verify_checkpoint(note, name=origin, public_key=signer.public_key, origin=origin)
    except CheckpointError:
        return status("failed", "signature", seen, "page" if seen else None)
    if size == 0:
        return status("empty", None, None, None)
    source: Source = "page"
    previous = seen
    if previous is None:
        source = "service"
        try:
            previous = await _kept_before(
                session, size, origin=origin, public_key=signer.public_key
            )
        except CheckpointError:
            return status("failed", "signature", None, source)
    if previous is None:
        return status("first", None, None, None)
    if previous.size > size:
        return status("failed", "shrunk", previous, source)
    try:
        proof = (
            await tree.prove_consistency(session, previous.size, size)
            if 0 < previous.size < size
            else []
        )
    except LookupError:
        return status("failed", "proof", previous, source)
    if not verify_consistency(previous.size, size, previous.root, current.root_hash, proof):
        return status("failed", "proof", previous, source)
    return status("verified", None, previous, source)
