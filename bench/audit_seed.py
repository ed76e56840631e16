"""Bulk seeding of the audit log for benchmarks, and the export probe.

`seed(engine, target)` grows the log to `target` entries the way appends would,
without one transaction per entry: every entry, its chain link, its leaf and the
stored subtree nodes it completes come from `service.audit.log.build_entry`, the
function `append` itself calls (so no formula is repeated here), and are written
with executemany in large batches together with the head row. bench/audit.py
proves each seeded log faithful before measuring it: the real verifier must accept
the real export of it (entries, chain, and the root the service computes from the
stored nodes and signs), and real appends continue from the seeded head.

    .venv/bin/python bench/audit_seed.py export URL OUT [--org UUID]

is the export probe: it runs the real streaming export code
(service.audit.service.export_stream) in its own process, writes the export to OUT
and prints, as one JSON line, its resident memory as the export went on.

    .venv/bin/python bench/audit_seed.py synthetic OUT --entries N

writes an export of N entries without a database (each entry from `build_entry`, as
the seeding makes them), signed with a fresh key, and prints that key.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing
from accord_client.merkle import CompactRange
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from service.audit.log import AuditEvent, build_entry
from service.audit.models import AuditEntry, AuditHead, AuditNode
from service.audit.ordering import HEAD_ID
from service.auth.principals import Principal, Role
from service.sectors import Sector

BATCH = 20_000
ORGS = [uuid.UUID(int=0x0A0A << 64 | i) for i in range(8)]
SECTORS = [Sector.victim_services, Sector.shelter, Sector.law_enforcement, Sector.healthcare]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORIGIN = "bench.example/audit"


def org_event(n: int) -> AuditEvent:
    """A disclosure-like entry (identifiers and digests only), from one of eight
    organizations to another, so that one organization's filtered export holds
    about a quarter of the log."""
    org = n % len(ORGS)
    actor = Principal(
        subject=f"staff-{n % 97}",
        org_id=ORGS[org],
        sector=SECTORS[org % len(SECTORS)],
        roles=frozenset({Role.caseworker}),
    )
    recipient = ORGS[(org + 3) % len(ORGS)]
    referral = uuid.UUID(int=n)
    return AuditEvent(
        action="disclosure",
        actor=actor,
        subject_ref=f"s-{n % 5000:06d}",
        counterpart_org_id=recipient,
        details={
            "referral_id": str(referral),
            "recipient_org": str(recipient),
            "purpose": "services_referral",
            "legal_basis": "consent",
            "categories": ["contact", "needs"],
            "released": [
                {"name": "phone", "category": "contact", "ciphertext_sha256": f"{n:064x}"},
                {"name": "needs", "category": "needs", "ciphertext_sha256": f"{n + 1:064x}"},
            ],
        },
    )


async def seed(engine: AsyncEngine, target: int, *, batch: int = BATCH) -> float:
    """Grow the log to `target` entries; returns the seconds it took."""
    started = time.perf_counter()
    while True:
        async with engine.begin() as conn:
            head = (
                await conn.execute(
                    select(AuditHead.size, AuditHead.last_hash, AuditHead.frontier)
                    .where(AuditHead.id == HEAD_ID)
                    .with_for_update()
                )
            ).one()
            if head.size >= target:
                if conn.dialect.name == "postgresql":
                    # A log that grows by appends is analysed by autovacuum as it goes;
                    # a bulk load is not, and PostgreSQL then plans the node and entry
                    # queries as if the tables were empty (measured: 490 ms instead of
                    # 3 ms per node query at 10^6 entries).
                    await conn.execute(text("ANALYZE audit_entries, audit_nodes"))
                return time.perf_counter() - started
            compact = CompactRange(head.size, [bytes.fromhex(h) for h in head.frontier])
            last = head.last_hash
            entries: list[dict[str, Any]] = []
            nodes: list[dict[str, Any]] = []
            for _ in range(min(batch, target - head.size)):
                n = compact.size
                entry, completed = build_entry(
                    compact, last, org_event(n), T0 + timedelta(milliseconds=n)
                )
                last = entry["leaf_hash"].hex()
                entries.append(entry)
                nodes.extend(completed)
            await conn.execute(insert(AuditEntry), entries)
            await conn.execute(insert(AuditNode), nodes)
            await conn.execute(
                update(AuditHead)
                .where(AuditHead.id == HEAD_ID)
                .values(
                    size=compact.size,
                    last_hash=last,
                    frontier=[h.hex() for h in compact.hashes],
                )
            )


# --- the export probe (its own process, so its memory is the export's alone) ---


def _memory_kb() -> tuple[int, int]:
    """(current resident set, peak resident set) of this process, in KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class _Signer:
    def __init__(self) -> None:
        self._key = nacl.signing.SigningKey.generate()

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)


async def export_probe(url: str, out: Path, org: uuid.UUID | None, marks: list[int]) -> None:
    from service.audit.service import EntryFilters, export_stream
    from service.settings import Settings
    from service.storage import make_engine, make_sessionmaker

    engine = make_engine(Settings(database_url=url, environment="test"))
    signer = _Signer()
    if org is None:
        principal = Principal("bench-auditor", uuid.uuid4(), Sector.oversight, frozenset())
    else:
        principal = Principal("bench-auditor", org, Sector.victim_services, frozenset())
    memory: dict[str, tuple[int, int]] = {"start": _memory_kb()}
    entries = written = 0
    pending = sorted(marks)
    started = time.perf_counter()
    try:
        with out.open("wb") as handle:
            async for chunk in export_stream(
                make_sessionmaker(engine),
                principal=principal,
                filters=EntryFilters(),
                fmt="jsonl",
                signer=signer,
                origin=ORIGIN,
            ):
                handle.write(chunk)
                written += len(chunk)
                # Entry lines start with {"action"; proof, header and checkpoint not.
                entries += chunk.count(b'\n{"action"') + chunk.startswith(b'{"action"')
                while pending and entries >= pending[0]:
                    memory[str(pending.pop(0))] = _memory_kb()
    finally:
        await engine.dispose()
    memory["end"] = _memory_kb()
    result = {
        "entries": entries,
        "seconds": time.perf_counter() - started,
        "bytes": written,
        "memory_kb": memory,
        "public_key": base64.b64encode(signer.public_key).decode(),
    }
    print(json.dumps(result))


def synthetic_export(out: Path, entries: int) -> str:
    """Write an export of `entries` entries without a database: each entry is what
    `append` would write (service.audit.log.build_entry, as `seed` uses it), then
    the checkpoint line signed over the root. Returns the base64 public key."""
    from accord_client.checkpoint import Checkpoint, sign_note

    signer = _Signer()
    compact = CompactRange()
    last = "0" * 64
    with out.open("wb") as handle:
        batch: list[bytes] = []
        for n in range(entries):
            entry, _ = build_entry(compact, last, org_event(n), T0 + timedelta(milliseconds=n))
            last = entry["leaf_hash"].hex()
            batch.append(entry["body"].encode())
            if len(batch) == 10_000:
                handle.write(b"\n".join(batch) + b"\n")
                batch = []
        if batch:
            handle.write(b"\n".join(batch) + b"\n")
        body = Checkpoint(ORIGIN, compact.size, compact.root()).body()
        note = sign_note(body, name=ORIGIN, public_key=signer.public_key, sign=signer.sign)
        handle.write((json.dumps({"checkpoint": note}) + "\n").encode())
    return base64.b64encode(signer.public_key).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["export", "synthetic"])
    parser.add_argument("url", help="export: the database URL; synthetic: the file")
    parser.add_argument("out", type=Path, nargs="?", help="export: the file to write")
    parser.add_argument("--org", type=uuid.UUID, default=None)
    parser.add_argument("--marks", default="100000,1000000")
    parser.add_argument("--entries", type=int, default=100_000, help="synthetic")
    args = parser.parse_args()
    if args.command == "synthetic":
        key = synthetic_export(Path(args.url), args.entries)
        print(json.dumps({"public_key": key}))
        return
    marks = [int(m) for m in args.marks.split(",") if m]
    asyncio.run(export_probe(args.url, args.out, args.org, marks))


if __name__ == "__main__":
    main()
