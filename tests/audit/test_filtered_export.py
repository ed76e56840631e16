"""Filtered exports verify offline: an ordinary organization's auditor (or any
filter) gets a header line and an inclusion proof after every entry, against the
tree size of the closing checkpoint. Each entry's leaf is recomputed, its proof
must lead to the signed root, the chain is checked between neighbours that are
both present, and every tampering names the entry (docs/audit.md "What a filtered
export is for"). Full exports are unchanged."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.audit_cli import app as audit_cli
from accord_client.audit_verify import (
    EquivocationError,
    SignedCheckpoint,
    VerificationError,
    verify_lines,
)
from accord_client.checkpoint import Checkpoint, sign_note
from accord_client.merkle import (
    CompactRange,
    inclusion_proof,
    leaf_hash,
    list_subtree_hash,
    verify_inclusion,
)
from typer.testing import CliRunner

from service.audit import service as audit_service
from service.audit import tree
from service.auth.principals import Role
from tests.audit.test_verifier import ENTRIES, KEY, ORIGIN, PUBLIC
from tests.support.world import World

# --- through the service (both databases) -------------------------------------


async def _export(
    client: httpx.AsyncClient, world: World, org: str, query: str = ""
) -> list[bytes]:
    r = await client.get(f"/v1/audit/export{query}", headers=world.headers(org, Role.auditor))
    assert r.status_code == 200, r.text
    return [line for line in r.content.split(b"\n") if line]


def _verify(app: Any, lines: list[bytes], **kw: Any) -> Any:
    return verify_lines(
        lines,
        public_key=app.state.keyring.checkpoint.public_key,
        origin=app.state.settings.audit_origin,
        **kw,
    )


def _pairs(lines: list[bytes]) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """(header, [(entry line, proof line)], checkpoint line)."""
    header, body, checkpoint = lines[0], lines[1:-1], lines[-1]
    assert len(body) % 2 == 0
    return header, [(body[i], body[i + 1]) for i in range(0, len(body), 2)], checkpoint


def _join(header: bytes, pairs: list[tuple[bytes, bytes]], checkpoint: bytes) -> list[bytes]:
    return [header, *(line for pair in pairs for line in pair), checkpoint]


def _seq(entry: bytes) -> int:
    seq: int = json.loads(entry)["seq"]
    return seq


def _edit_proof(line: bytes, **changes: Any) -> bytes:
    document = json.loads(line)
    document["inclusion"].update(changes)
    return json.dumps(document, separators=(",", ":")).encode()


async def test_an_auditors_own_organization_export_verifies_offline(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    await _export(client, world, "vsp")  # two exports in a row: neighbours present
    lines = await _export(client, world, "vsp")
    header, pairs, _ = _pairs(lines)
    size = json.loads(header)["filtered_export"]["tree_size"]
    result = _verify(app, lines)
    assert result.filtered
    assert result.size == size
    assert result.entries == len(pairs) >= 3
    vsp = str(world.orgs["vsp"])
    seqs = [_seq(entry) for entry, _ in pairs]
    for entry, _ in pairs:
        document = json.loads(entry)
        assert vsp in (document["actor"]["org"], document["counterpart"])
    assert seqs == sorted(seqs)
    assert seqs[-1] == size - 1
    assert any(b - a > 1 for a, b in itertools.pairwise(seqs)), "gaps"
    assert any(b - a == 1 for a, b in itertools.pairwise(seqs)), "neighbours"
    # Each proof is the one the proof endpoint gives, against the checkpoint's root.
    oversight = world.headers("oversight", Role.auditor)
    for entry, proof_line in pairs[:3]:
        proof = json.loads(proof_line)["inclusion"]
        served = (
            await client.get(
                f"/v1/audit/proof/inclusion?seq={proof['seq']}&tree_size={size}",
                headers=oversight,
            )
        ).json()
        assert served == proof
        assert verify_inclusion(
            leaf_hash(entry),
            proof["seq"],
            size,
            [base64.b64decode(p) for p in proof["proof"]],
            result.root,
        )
    # The same log, exported whole, has the same signed root at that size.
    full = await _export(client, world, "oversight")
    assert not full[0].startswith(b'{"filtered_export"')
    assert not any(line.startswith(b'{"inclusion"') for line in full)
    assert _verify(app, full, older=[result.checkpoint]).size > size


async def test_F_tampered_filtered_exports_name_the_entry(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    await _export(client, world, "vsp")
    lines = await _export(client, world, "vsp")
    header, pairs, checkpoint = _pairs(lines)
    k = 1
    entry, proof_line = pairs[k]
    seq, next_seq = _seq(entry), _seq(pairs[k + 1][0])
    proof = json.loads(proof_line)["inclusion"]
    flipped = base64.b64encode(bytes(32)).decode()
    swapped = [*pairs[:k], pairs[k + 1], pairs[k], *pairs[k + 2 :]]
    cases: dict[str, tuple[list[tuple[bytes, bytes]], int]] = {
        "altered entry": (
            [*pairs[:k], (entry.replace(b'"action":"', b'"action":"x', 1), proof_line)],
            seq,
        ),
        "altered proof hash": (
            [*pairs[:k], (entry, _edit_proof(proof_line, proof=[flipped, *proof["proof"][1:]]))],
            seq,
        ),
        "altered leaf hash": (
            [*pairs[:k], (entry, _edit_proof(proof_line, leaf_hash=flipped))],
            seq,
        ),
        "wrong index": ([*pairs[:k], (entry, _edit_proof(proof_line, seq=seq + 1))], seq),
        "wrong tree size": ([*pairs[:k], (entry, _edit_proof(proof_line, tree_size=1))], seq),
        "swapped entries": (swapped, seq),
    }
    for name, (tampered, expected) in cases.items():
        whole = _join(header, [*tampered, *pairs[len(tampered) :]], checkpoint)
        with pytest.raises(VerificationError) as exc:
            _verify(app, whole)
        assert exc.value.seq == expected, (name, str(exc.value))
    dropped = [header, *(line for pair in pairs for line in pair if line != proof_line)]
    with pytest.raises(VerificationError) as exc:
        _verify(app, [*dropped, checkpoint])
    assert exc.value.seq == seq, str(exc.value)
    # An entry moved to where its own proof line is missing.
    only_entries = [header, *(e for e, _ in pairs), checkpoint]
    with pytest.raises(VerificationError) as exc:
        _verify(app, only_entries)
    assert exc.value.seq == _seq(pairs[0][0])
    # The checkpoint: a signature that no longer verifies.
    note = json.loads(checkpoint)["checkpoint"]
    bad_note = json.dumps({"checkpoint": note.replace("\n", "\n\n", 1)}).encode()
    with pytest.raises(VerificationError, match="checkpoint"):
        _verify(app, _join(header, pairs, bad_note))
    # The header: a different tree size than the proofs and the checkpoint.
    other = json.dumps({"filtered_export": {"tree_size": 3}}).encode()
    with pytest.raises(VerificationError) as exc:
        _verify(app, _join(other, pairs, checkpoint))
    assert exc.value.seq is not None
    assert next_seq > seq


async def test_other_filters_give_verifiable_exports_across_batches(
    app: Any, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, windows and node queries: proofs span batches and chunked IN lists.
    monkeypatch.setattr(audit_service, "EXPORT_BATCH", 2)
    monkeypatch.setattr(audit_service, "EXPORT_WINDOW", 5)
    monkeypatch.setattr(tree, "FETCH_CHUNK", 3)
    for _ in range(3):
        await _export(client, world, "police")
    for org, query in (
        ("oversight", "?action=member.added"),
        ("oversight", f"?org={world.orgs['shelter']}"),
        ("police", ""),
        ("oversight", "?action=nothing.matches"),
    ):
        lines = await _export(client, world, org, query)
        result = _verify(app, lines)
        assert result.filtered, query
        assert result.entries == (len(lines) - 2) // 2
    assert result.entries == 0  # an empty filtered export still proves its checkpoint
    full = await _export(client, world, "oversight")
    assert _verify(app, full).size == len(full) - 1


async def test_the_cli_verifies_a_filtered_export_and_fails_with_the_entry(
    app: Any, client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    await _export(client, world, "vsp")
    lines = await _export(client, world, "vsp")
    good = tmp_path / "mine.jsonl"
    good.write_bytes(b"\n".join(lines) + b"\n")
    key = base64.b64encode(app.state.keyring.checkpoint.public_key).decode()
    state = tmp_path / "state.json"
    args = ["verify", "--key", key, "--origin", app.state.settings.audit_origin]
    args += ["--state", str(state)]
    ok = CliRunner().invoke(audit_cli, [*args, str(good)])
    assert ok.exit_code == 0, ok.output
    assert f"OK: filtered export: {(len(lines) - 2) // 2} entries" in ok.stdout
    header, pairs, checkpoint = _pairs(lines)
    entry, proof_line = pairs[2]
    bad = tmp_path / "bad.jsonl"
    changed = entry.replace(b'"at":"2', b'"at":"3', 1)
    tampered = _join(header, [*pairs[:2], (changed, proof_line), *pairs[3:]], checkpoint)
    bad.write_bytes(b"\n".join(tampered) + b"\n")
    failed = CliRunner().invoke(audit_cli, [*args, str(bad)])
    assert failed.exit_code == 1
    assert f"entry {_seq(entry)}:" in failed.stderr
    # A later filtered export: the older checkpoint (in the state file) is smaller
    # and cannot be compared without a consistency proof; said, not hidden.
    later = tmp_path / "later.jsonl"
    later.write_bytes(b"\n".join(await _export(client, world, "vsp")) + b"\n")
    again = CliRunner().invoke(audit_cli, [*args, str(later)])
    assert again.exit_code == 0, again.output
    assert "is not compared" in again.stderr


# --- the verifier alone (no server) -------------------------------------------


def _note(size: int, root: bytes) -> str:
    body = Checkpoint(ORIGIN, size, root).body()
    return sign_note(body, name=ORIGIN, public_key=PUBLIC, sign=lambda m: KEY.sign(m).signature)


def _filtered(entries: list[bytes], keep: list[int]) -> list[bytes]:
    leaves = [leaf_hash(e) for e in entries]
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    size = len(entries)
    out = [json.dumps({"filtered_export": {"tree_size": size}}).encode()]
    for seq in keep:
        proof = inclusion_proof(seq, size, list_subtree_hash(leaves))
        line = {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": base64.b64encode(leaves[seq]).decode(),
            "proof": [base64.b64encode(p).decode() for p in proof],
        }
        out += [entries[seq], json.dumps({"inclusion": line}, separators=(",", ":")).encode()]
    return [*out, json.dumps({"checkpoint": _note(size, compact.root())}).encode()]


KEEP = [0, 2, 3, 7, 11]


def _first_bad(lines: list[bytes], **kw: Any) -> int | None:
    with pytest.raises(VerificationError) as exc:
        verify_lines(lines, public_key=PUBLIC, origin=ORIGIN, **kw)
    return exc.value.seq


def test_O_a_filtered_export_verifies_and_older_checkpoints_are_compared_when_possible() -> None:
    lines = _filtered(ENTRIES, KEEP)
    result = verify_lines(lines, public_key=PUBLIC, origin=ORIGIN)
    assert (result.filtered, result.entries, result.size) == (True, len(KEEP), 12)
    same = verify_lines(lines, public_key=PUBLIC, origin=ORIGIN, older=[result.checkpoint])
    assert same.unchecked_older == []
    smaller = Checkpoint(ORIGIN, 5, bytes(32))
    assert verify_lines(lines, public_key=PUBLIC, origin=ORIGIN, older=[smaller]).unchecked_older
    forged = Checkpoint(ORIGIN, 12, bytes(32))
    with pytest.raises(EquivocationError):
        verify_lines(lines, public_key=PUBLIC, origin=ORIGIN, older=[SignedCheckpoint(forged)])
    assert _first_bad(lines, older=[Checkpoint(ORIGIN, 13, bytes(32))]) is None


def test_F_every_changed_byte_of_a_filtered_export_is_found_at_its_entry() -> None:
    lines = _filtered(ENTRIES, KEEP)
    for position in range(1, len(lines) - 1):
        seq = KEEP[(position - 1) // 2]
        for i in range(len(lines[position])):
            changed = bytearray(lines[position])
            changed[i] ^= 0x01
            tampered = [*lines[:position], bytes(changed), *lines[position + 1 :]]
            with pytest.raises(VerificationError) as exc:
                verify_lines(tampered, public_key=PUBLIC, origin=ORIGIN)
            # A changed seq in an entry line may name the neighbour it now collides
            # with; everything else names the entry itself.
            assert exc.value.seq is not None, (position, i, str(exc.value))
            assert abs(exc.value.seq - seq) <= 1, (position, i, str(exc.value))


def test_F_the_first_entry_tampered_is_named_even_though_the_root_comes_last() -> None:
    lines = _filtered(ENTRIES, KEEP)
    proof = json.loads(lines[2])["inclusion"]
    proof["proof"][0] = base64.b64encode(bytes(32)).decode()
    first = [lines[0], lines[1], json.dumps({"inclusion": proof}).encode(), *lines[3:]]
    assert _first_bad(first) == 0
    later = json.loads(lines[6])["inclusion"]
    later["proof"][-1] = base64.b64encode(bytes(32)).decode()
    assert _first_bad([*lines[:6], json.dumps({"inclusion": later}).encode(), *lines[7:]]) == 3
    # Entries 2 and 3 are neighbours: entry 3's chain to entry 2 is checked too.
    assert _first_bad([*lines[:3], *lines[5:7], *lines[3:5], *lines[7:]]) == 2
