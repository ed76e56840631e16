"""Reading the audit log: who may see which entries, listing, streamed exports."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.audit.models import AuditEntry
from service.audit.tree import signed_checkpoint_at, tree_size
from service.auth.principals import Principal
from service.crypto import Signer
from service.sectors import Sector

EXPORT_BATCH = 500
CSV_COLUMNS = ("seq", "at", "action", "actor_org", "counterpart", "subject", "leaf_hash", "body")


@dataclass(frozen=True)
class EntryFilters:
    since: datetime | None = None
    until: datetime | None = None
    org: uuid.UUID | None = None
    subject: str | None = None
    action: str | None = None


def sees_everything(principal: Principal) -> bool:
    """The oversight sector audits every organization; other auditors their own."""
    return principal.sector is Sector.oversight


def _conditions(principal: Principal, filters: EntryFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if not sees_everything(principal):
        conditions.append(
            or_(
                AuditEntry.actor_org_id == principal.org_id,
                AuditEntry.counterpart_org_id == principal.org_id,
            )
        )
    if filters.org is not None:
        conditions.append(
            or_(
                AuditEntry.actor_org_id == filters.org, AuditEntry.counterpart_org_id == filters.org
            )
        )
    if filters.since is not None:
        conditions.append(AuditEntry.at >= filters.since)
    if filters.until is not None:
        conditions.append(AuditEntry.at < filters.until)
    if filters.subject is not None:
        conditions.append(AuditEntry.subject_ref == filters.subject)
    if filters.action is not None:
        conditions.append(AuditEntry.action == filters.action)
    return conditions


async def list_entries(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: EntryFilters,
    after_seq: int | None,
    limit: int,
    below: int | None = None,
) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(*_conditions(principal, filters))
    if after_seq is not None:
        stmt = stmt.where(AuditEntry.seq > after_seq)
    if below is not None:
        stmt = stmt.where(AuditEntry.seq < below)
    stmt = stmt.order_by(AuditEntry.seq).limit(limit)
    return list((await session.scalars(stmt)).all())


def _csv_row(entry: AuditEntry) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        [
            entry.seq,
            entry.at.isoformat(),
            entry.action,
            entry.actor_org_id or "",
            entry.counterpart_org_id or "",
            entry.subject_ref or "",
            bytes(entry.leaf_hash).hex(),
            entry.body,
        ]
    )
    return buffer.getvalue()


async def export_stream(
    factory: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    filters: EntryFilters,
    fmt: str,
    signer: Signer,
    origin: str,
) -> AsyncIterator[bytes]:
    """Entries in sequence order, read in batches (constant memory), then the signed
    checkpoint that covers them. A snapshot: entries appended meanwhile are left out."""
    async with factory() as session:
        size = await tree_size(session)
        if fmt == "csv":
            yield (",".join(CSV_COLUMNS) + "\n").encode()
        after: int | None = None
        while True:
            batch = await list_entries(
                session,
                principal=principal,
                filters=filters,
                after_seq=after,
                limit=EXPORT_BATCH,
                below=size,
            )
            if not batch:
                break
            chunk = "".join(_csv_row(e) if fmt == "csv" else e.body + "\n" for e in batch).encode(
                "utf-8"
            )
            yield chunk
            after = batch[-1].seq
            session.expunge_all()
        note = await signed_checkpoint_at(session, size, signer=signer, origin=origin)
        if fmt == "jsonl":
            yield (json.dumps({"checkpoint": note}) + "\n").encode()


async def subject_disclosures(session: AsyncSession, subject_ref: str) -> list[AuditEntry]:
    """Every `disclosure` entry about one subject, oldest first (the accounting of
    disclosures). Visibility is the caller's job: the subject's owner or the survivor."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.subject_ref == subject_ref, AuditEntry.action == "disclosure")
        .order_by(AuditEntry.seq)
    )
    return list((await session.scalars(stmt)).all())
