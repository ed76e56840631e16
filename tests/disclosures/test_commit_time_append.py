"""Deliveries stage their audit entry; PostgreSQL appends it in the COMMIT with a
trigger that completes, hashes and links it (migration 0110), while every other
audited change appends in Python (service/audit/log.py). Both must write the one
log the offline verifier accepts: the same canonical bytes, chain, tree nodes and
right edge (O-verify), on both engines."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from typing import Any

import pytest
from accord_client.audit_format import entry_bytes
from accord_client.audit_verify import verify_lines
from accord_client.merkle import verify_inclusion
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from service.audit.at_commit import (
    NOTICE_PREFIX,
    EntryNotReportedError,
    StagedEntry,
    _on_notice,
    body_parts,
    stage,
)
from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.referrals.models import ReferralEvent
from service.referrals.service import timeline_row
from service.sectors import Sector
from tests.referrals.support import Kit
from tests.support.databases import TestDatabase

_TEXT = st.text(max_size=12)
# Canonical JSON keys are ASCII (accord_client.envelope_format).
_KEY = st.sampled_from(["prev", "seq", "subject", "v"]) | st.text(
    st.characters(codec="ascii"), max_size=8
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEY, inner, max_size=3),
    max_leaves=12,
)


@given(
    details=st.dictionaries(_KEY, _JSON, max_size=4),
    subject=st.none() | _TEXT,
    prev=st.binary(min_size=32, max_size=32).map(bytes.hex),
    seq=st.integers(0, 2**53 - 1),
)
def test_body_parts_rebuild_the_canonical_bytes_for_any_prev_and_seq(
    details: dict[str, Any], subject: str | None, prev: str, seq: int
) -> None:
    """What the trigger concatenates equals what Python would have hashed, whatever
    the details hold (look-alike "prev" and "seq" keys nested in them included)."""
    document = {
        "v": 1,
        "seq": 0,
        "at": "2026-12-02T03:00:00.000000Z",
        "action": "disclosure",
        "actor": {"principal": "alice", "org": str(uuid.UUID(int=1)), "sector": "shelter"},
        "subject": subject,
        "counterpart": None,
        "details": details,
        "prev": "0" * 64,
    }
    head, tail = body_parts(document)
    rebuilt = head + prev.encode() + b'","seq":' + str(seq).encode() + tail
    assert rebuilt == entry_bytes({**document, "prev": prev, "seq": seq})


def test_the_number_comes_only_from_the_commits_notice() -> None:
    staged = StagedEntry(token=uuid.uuid4())
    with pytest.raises(EntryNotReportedError) as raised:
        staged.committed_seq()
    assert raised.value.status == 503
    from service.audit import at_commit

    at_commit._WAITING[staged.token.hex] = staged
    for other in (
        "something else",
        "accord-audit-append nonsense 1",
        f"{NOTICE_PREFIX}{staged.token} x",
    ):
        _on_notice(None, type("Message", (), {"message": other})())
    assert staged.seq is None
    _on_notice(None, type("Message", (), {"message": f"accord-audit-append {staged.token} 41"})())
    assert staged.committed_seq() == 41
    assert staged.token.hex not in at_commit._WAITING


async def test_commit_time_and_python_appends_make_one_verifiable_log(kit: Kit, app: Any) -> None:
    """Deliveries (staged) interleaved with other audited changes (appended at once),
    over enough sizes that the trigger merges subtrees up to several levels: the
    export verifies against the signed checkpoint (chain, leaves, the root from the
    right edge both paths keep) and every delivery's inclusion proof, from the tree
    nodes the trigger wrote, verifies too."""
    referral = await kit.send()
    delivered: list[int] = []
    for i in range(19):
        r = await kit.deliver(referral["id"])
        assert r.status_code == 200, r.text
        delivered.append(r.json()["disclosure_seq"])
        if i % 3 == 0:  # a Python-path append between two staged ones
            created = await kit.client.post("/v1/subjects", json={}, headers=kit.staff("vsp"))
            assert created.status_code == 201, created.text
    assert delivered == sorted(set(delivered))
    auditor = kit.world.headers("oversight", Role.auditor)
    checkpoint = (await kit.client.get("/v1/audit/checkpoint", headers=auditor)).json()
    exported = await kit.client.get("/v1/audit/export", headers=auditor)
    assert exported.status_code == 200, exported.text
    lines = [line for line in exported.content.split(b"\n") if line]
    result = verify_lines(
        lines,
        public_key=app.state.keyring.checkpoint.public_key,
        origin=app.state.settings.audit_origin,
    )
    actions = {json.loads(line)["seq"]: json.loads(line)["action"] for line in lines[:-1]}
    assert all(actions[seq] == "disclosure" for seq in delivered)
    assert result.size >= delivered[-1] + 1
    size, root = checkpoint["tree_size"], base64.b64decode(checkpoint["root_hash"])
    for seq in delivered:
        if seq >= size:
            continue
        proof = (
            await kit.client.get(
                f"/v1/audit/proof/inclusion?seq={seq}&tree_size={size}", headers=auditor
            )
        ).json()
        path = [base64.b64decode(p) for p in proof["proof"]]
        assert verify_inclusion(base64.b64decode(proof["leaf_hash"]), seq, size, path, root)


async def test_a_replica_session_still_appends_at_commit(app: Any, db: TestDatabase) -> None:
    """A session running with `session_replication_role = replica` skips ordinary
    triggers; the commit-time append is ENABLE ALWAYS, so the staged entry is still
    written and numbered (without it the release would commit with no entry)."""
    if db.engine != "postgresql":
        pytest.skip("SQLite appends at once")
    async with app.state.sessionmaker() as session:
        size = await session.scalar(text("SELECT size FROM audit_head"))
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        staged = await stage(
            session,
            AuditEvent("test.replica", None, actor_label="test"),
            clock=app.state.clock,
        )
        await session.commit()
    assert staged.committed_seq() == size
    async with app.state.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM audit_pending")) == 0
        assert await session.scalar(text("SELECT size FROM audit_head")) == size + 1


async def test_staged_rows_skip_the_wal_and_bodies_use_lz4(app: Any, db: TestDatabase) -> None:
    """Migration 0130: the staged row never outlives its transaction, so its table is
    unlogged; the staged halves and the entry bodies are compressed with lz4."""
    if db.engine != "postgresql":
        pytest.skip("SQLite has neither setting")
    async with app.state.sessionmaker() as session:
        persistence = await session.scalar(
            text("SELECT relpersistence::text FROM pg_class WHERE relname = 'audit_pending'")
        )
        rows = await session.execute(
            text(
                "SELECT attname, attcompression::text FROM pg_attribute "
                "WHERE attrelid IN ('audit_pending'::regclass, 'audit_entries'::regclass)"
                " AND attname IN ('body_head', 'body_tail', 'body')"
            )
        )
        compression = dict(rows.all())
    assert persistence == "u"
    assert compression == {"body_head": "l", "body_tail": "l", "body": "l"}


async def _timeline(app: Any, referral_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(
                ReferralEvent.event,
                ReferralEvent.audit_seq,
                ReferralEvent.at,
                ReferralEvent.actor,
                ReferralEvent.actor_org_id,
                ReferralEvent.detail,
            )
            .where(ReferralEvent.referral_id == referral_id)
            .order_by(ReferralEvent.id)
        )
        return [tuple(row) for row in rows.all()]


async def test_further_citing_events_are_written_in_order_with_the_entry(
    kit: Kit, app: Any, db: TestDatabase
) -> None:
    """A citing row with further events (`CitingRow.also`, a send's recipient
    warnings): staged, the trigger of migration 0230 writes them at the commit (on
    PostgreSQL none exists before it), after the citing one, in order, each citing
    the entry, with the citing row's time, actor and organization and no detail;
    appended at once (`append`, and `stage` on SQLite), the same rows."""
    referral_id = uuid.UUID((await kit.send())["id"])
    sent = await _timeline(app, referral_id)
    principal = Principal(
        "alice", kit.world.orgs["vsp"], Sector.victim_services, frozenset({Role.caseworker})
    )
    row = timeline_row(referral_id, "delivered", principal, app.state.clock, detail="d")
    staged_row = dataclasses.replace(row, also=("recipient_limited_hours", "delivered_withheld"))
    async with app.state.sessionmaker() as session:
        staged = await stage(
            session,
            AuditEvent("test.staged", None, actor_label="t"),
            clock=app.state.clock,
            citing=staged_row,
        )
        if db.engine == "postgresql":
            assert await _timeline(app, referral_id) == sent  # only at the commit
        await session.commit()
    values = row.values
    who = (values["at"], values["actor"], values["actor_org_id"])
    assert (await _timeline(app, referral_id))[len(sent) :] == [
        ("delivered", staged.committed_seq(), *who, "d"),
        ("recipient_limited_hours", staged.committed_seq(), *who, None),
        ("delivered_withheld", staged.committed_seq(), *who, None),
    ]
    written = await _timeline(app, referral_id)
    async with app.state.sessionmaker() as session:
        appended = await append(
            session,
            AuditEvent("test.appended", None, actor_label="t"),
            clock=app.state.clock,
            citing=dataclasses.replace(row, also=("recipient_not_accepting",)),
        )
        await session.commit()
    assert appended.seq == staged.committed_seq() + 1
    assert (await _timeline(app, referral_id))[len(written) :] == [
        ("delivered", appended.seq, *who, "d"),
        ("recipient_not_accepting", appended.seq, *who, None),
    ]
    async with app.state.sessionmaker() as session:
        assert await session.scalar(text("SELECT count(*) FROM audit_pending")) == 0
