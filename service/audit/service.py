"""Reading the audit log: who may see which entries, listing, streamed exports."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.audit.models import AuditEntry
from service.audit.tree import InclusionProver, signed_checkpoint_at, tree_size
from service.auth.principals import Principal
from service.crypto import Signer
from service.sectors import Sector

EXPORT_BATCH = 500
EXPORT_WINDOW = 10_000
CSV_END = "end"
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


def is_filtered(principal: Principal, filters: EntryFilters) -> bool:
    """Whether an export leaves entries out: an ordinary organization's auditor, or
    any filter. Such a JSON Lines export carries an inclusion proof per entry."""
    return not sees_everything(principal) or any(
        value is not None for value in vars(filters).values()
    )


def _conditions(
    principal: Principal, filters: EntryFilters, *, in_seq_order: bool = False
) -> list[ColumnElement[bool]]:
    """With `in_seq_order`, the filtered columns are wrapped (coalesce(c, c), the same
    value) so that no index on them can be used: the database walks the primary key
    from the last batch and stops after a batch of matches. Without it, SQLite reads
    every match of an index (a whole organization's entries) and sorts them, for
    each batch of an export: quadratic, measured at 2 s per batch at 10^6 entries."""

    def column(c: Any) -> Any:
        return func.coalesce(c, c) if in_seq_order else c

    actor, counterpart = column(AuditEntry.actor_org_id), column(AuditEntry.counterpart_org_id)
    conditions: list[ColumnElement[bool]] = []
    if not sees_everything(principal):
        conditions.append(or_(actor == principal.org_id, counterpart == principal.org_id))
    if filters.org is not None:
        conditions.append(or_(actor == filters.org, counterpart == filters.org))
    if filters.since is not None:
        conditions.append(column(AuditEntry.at) >= filters.since)
    if filters.until is not None:
        conditions.append(column(AuditEntry.at) < filters.until)
    if filters.subject is not None:
        conditions.append(column(AuditEntry.subject_ref) == filters.subject)
    if filters.action is not None:
        conditions.append(column(AuditEntry.action) == filters.action)
    return conditions


async def list_entries(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: EntryFilters,
    after_seq: int | None,
    limit: int,
    below: int | None = None,
    in_seq_order: bool = False,
) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(*_conditions(principal, filters, in_seq_order=in_seq_order))
    if after_seq is not None:
        stmt = stmt.where(AuditEntry.seq > after_seq)
    if below is not None:
        stmt = stmt.where(AuditEntry.seq < below)
    stmt = stmt.order_by(AuditEntry.seq).limit(limit)
    return list((await session.scalars(stmt)).all())


async def walk_bounds(session: AsyncSession, filters: EntryFilters, size: int) -> tuple[int, int]:
    """[first, stop): the sequence numbers an export of the first `size` entries must
    walk to find every entry within the filters' time window. Without it a `since`
    export (an auditor's last minute) walked the whole log from entry 0, so its cost
    grew with the log (docs/benchmarks/soak.md). Entries' times are not strictly in
    sequence order (an entry staged at one instant is appended at its commit), so the
    bounds are the least and greatest numbers of matching entries, read through the
    index on `at` alone: `seq + 0` and no condition on `seq`, or the planner walks the
    primary key (measured: 17 ms at 8,624 entries against 0.5 ms)."""
    first, stop = 0, size
    if filters.since is not None:
        low = await session.scalar(
            select(func.min(AuditEntry.seq + 0)).where(AuditEntry.at >= filters.since)
        )
        first = size if low is None else min(int(low), size)
    if filters.until is not None:
        high = await session.scalar(
            select(func.max(AuditEntry.seq + 0)).where(AuditEntry.at < filters.until)
        )
        stop = 0 if high is None else min(int(high) + 1, size)
    return first, stop


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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _proved_lines(entry: AuditEntry, proof: list[bytes], size: int) -> str:
    """An entry line (its canonical bytes, unchanged) and its inclusion proof line, the
    same fields as GET /v1/audit/proof/inclusion (docs/audit.md)."""
    inclusion = {
        "seq": entry.seq,
        "tree_size": size,
        "leaf_hash": _b64(bytes(entry.leaf_hash)),
        "proof": [_b64(p) for p in proof],
    }
    return entry.body + "\n" + json.dumps({"inclusion": inclusion}, separators=(",", ":")) + "\n"


def csv_end_row(entries: int, size: int) -> bytes:
    """The last row of every complete CSV export (docs/audit.md "Exports"):
    `end,<entries>,<tree size>` and the other columns empty. A JSON Lines export's
    last line is its signed checkpoint, which names the tree size and root."""
    return f"{CSV_END},{entries},{size}{',' * (len(CSV_COLUMNS) - 3)}\n".encode()


async def export_stream(
    factory: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    filters: EntryFilters,
    fmt: str,
    signer: Signer,
    origin: str,
    on_end: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """Entries in sequence order, a batch at a time (constant memory), then (JSON
    Lines) the signed checkpoint that covers them, or (CSV) the `csv_end_row`: only a
    complete export ends so. A snapshot: entries appended meanwhile are left out.
    `on_end` runs however the stream ends.

    Each batch is read in its own short session, closed before the batch goes to the
    client: a slow reader holds no connection between batches (on SQLite the only
    one, and the write lock with it; issue 22, item 10). The log is append-only, so
    batches of the first `size` entries read in separate transactions are one
    consistent export.

    A filtered JSON Lines export (see `is_filtered`) starts with a header line
    `{"filtered_export": {"tree_size": N}}` and follows every entry line with its
    inclusion proof in the tree of size N, the size of the closing checkpoint, so
    that it verifies offline without the entries left out."""
    try:
        async with factory() as session:
            size = await tree_size(session)
            first, stop = await walk_bounds(session, filters, size)
        proved = fmt == "jsonl" and is_filtered(principal, filters)
        prover: InclusionProver | None = None
        if fmt == "csv":
            yield (",".join(CSV_COLUMNS) + "\n").encode()
        if proved:
            header = {"filtered_export": {"tree_size": size}}
            yield (json.dumps(header, separators=(",", ":")) + "\n").encode()
        count = 0
        # Each query covers at most EXPORT_WINDOW sequence numbers, so that none reads
        # more than that however the database plans it: one walk over the log in all.
        after = first - 1
        while after < stop - 1:
            async with factory() as session:
                upper = min(stop, after + 1 + EXPORT_WINDOW)
                batch = await list_entries(
                    session,
                    principal=principal,
                    filters=filters,
                    after_seq=after,
                    limit=EXPORT_BATCH,
                    below=upper,
                    in_seq_order=True,
                )
                after = batch[-1].seq if len(batch) == EXPORT_BATCH else upper - 1
                if not batch:
                    continue
                if fmt == "csv":
                    text = "".join(_csv_row(e) for e in batch)
                elif proved:
                    if prover is None:
                        prover = InclusionProver(session, size)
                    # The nodes it keeps are append-only: reused across sessions.
                    prover.session = session
                    proofs = await prover.prove(e.seq for e in batch)
                    text = "".join(
                        _proved_lines(e, p, size) for e, p in zip(batch, proofs, strict=True)
                    )
                else:
                    text = "".join(e.body + "\n" for e in batch)
                count += len(batch)
            # The session is closed: the client reads this batch at its own pace.
            yield text.encode("utf-8")
        if fmt == "csv":
            yield csv_end_row(count, size)
            return
        async with factory() as session:
            note = await signed_checkpoint_at(session, size, signer=signer, origin=origin)
        yield (json.dumps({"checkpoint": note}) + "\n").encode()
    finally:
        if on_end is not None:
            on_end()


async def subject_disclosures(session: AsyncSession, subject_ref: str) -> list[AuditEntry]:
    """Every `disclosure` entry about one subject, oldest first (the accounting of
    disclosures). Visibility is the caller's job: the subject's owner or the survivor."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.subject_ref == subject_ref, AuditEntry.action == "disclosure")
        .order_by(AuditEntry.seq)
    )
    return list((await session.scalars(stmt)).all())
