"""The offline verifier on exports built here (no server): every tampering case names
the first bad sequence number (F03), equivocation is reported with both signed
checkpoints as evidence (F06), the state file remembers signed checkpoints, and the
CLI's verify and compare commands exit non-zero on failure."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nacl.signing
import pytest
from accord_client.audit_cli import app as audit_cli
from accord_client.audit_format import GENESIS_PREV, entry_bytes, entry_document
from accord_client.audit_verify import (
    EquivocationError,
    SignedCheckpoint,
    VerificationError,
    load_state,
    save_state,
    verify_lines,
)
from accord_client.checkpoint import Checkpoint, sign_note, verifier_key, verify_checkpoint
from accord_client.merkle import CompactRange, consistency_proof, leaf_hash, list_subtree_hash
from typer.testing import CliRunner

ORIGIN = "audit.test/log"
KEY = nacl.signing.SigningKey(hashlib.sha256(b"verifier test key").digest())
PUBLIC = bytes(KEY.verify_key)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _entries(n: int, *, start: list[bytes] | None = None) -> list[bytes]:
    out = list(start or [])
    prev = leaf_hash(out[-1]).hex() if out else GENESIS_PREV
    for seq in range(len(out), n):
        body = entry_bytes(
            entry_document(
                seq=seq,
                at=T0 + timedelta(seconds=seq),
                action="disclosure" if seq % 2 else "consent.created",
                actor={"principal": f"p{seq % 3}", "org": "org-a", "sector": "victim_services"},
                subject=f"subj-{seq % 4}",
                counterpart="org-b",
                details={"categories": ["needs"], "ciphertext_sha256": [f"{seq:064x}"]},
                prev=prev,
            )
        )
        out.append(body)
        prev = leaf_hash(body).hex()
    return out


def _note(entries: list[bytes]) -> str:
    compact = CompactRange()
    for e in entries:
        compact.append(leaf_hash(e))
    body = Checkpoint(ORIGIN, compact.size, compact.root()).body()
    return sign_note(body, name=ORIGIN, public_key=PUBLIC, sign=lambda m: KEY.sign(m).signature)


def _export(entries: list[bytes], note: str | None = None) -> list[bytes]:
    line = json.dumps({"checkpoint": note if note is not None else _note(entries)})
    return [*entries, line.encode()]


def _verify(lines: list[bytes], **kw: object) -> object:
    return verify_lines(lines, public_key=PUBLIC, origin=ORIGIN, **kw)  # type: ignore[arg-type]


def _first_bad(lines: list[bytes], **kw: object) -> int | None:
    with pytest.raises(VerificationError) as exc:
        _verify(lines, **kw)
    return exc.value.seq


ENTRIES = _entries(12)
NOTE = _note(ENTRIES)


def test_O_verify_a_whole_export_verifies() -> None:
    result = verify_lines(_export(ENTRIES), public_key=PUBLIC, origin=ORIGIN)
    assert result.size == 12
    assert result.note == NOTE
    assert verify_lines(_export([]), public_key=PUBLIC, origin=ORIGIN).size == 0


def _forged(seq: int, prev: bytes | None) -> bytes:
    return entry_bytes(
        entry_document(
            seq=seq,
            at=T0,
            action="disclosure",
            actor={"principal": "mallory", "org": "org-m", "sector": "law_enforcement"},
            subject="subj-0",
            counterpart=None,
            details={},
            prev=leaf_hash(prev).hex() if prev is not None else GENESIS_PREV,
        )
    )


@pytest.mark.parametrize("k", [0, 1, 5, 10])
def test_F03_deleted_swapped_inserted_repeated_entries_name_the_first_bad_sequence(k: int) -> None:
    e = ENTRIES
    swapped = list(e)
    swapped[k], swapped[k + 1] = swapped[k + 1], swapped[k]
    prev = e[k - 1] if k else None
    cases = {
        "deleted": ([*e[:k], *e[k + 1 :]], k),
        "swapped": (swapped, k),
        "inserted": ([*e[:k], _forged(k, prev), *e[k:]], k),
        "repeated": ([*e[: k + 1], e[k], *e[k + 1 :]], k),
        "renumbered": ([*e[:k], e[k].replace(b'"seq":', b'"seq":1', 1), *e[k + 1 :]], k),
    }
    for name, (tampered, seq) in cases.items():
        assert _first_bad(_export(tampered, NOTE)) == seq, name


def test_F03_truncated_and_extended_exports_name_the_first_missing_or_extra_entry() -> None:
    assert _first_bad(_export(ENTRIES[:-3], NOTE)) == 9
    assert _first_bad(_export(_entries(14, start=ENTRIES), NOTE)) == 12
    assert _first_bad(_export(ENTRIES, NOTE)[:-1]) is None  # no checkpoint at all


def test_F03_every_changed_byte_is_found_at_its_entry() -> None:
    lines = _export(ENTRIES[:6], _note(ENTRIES[:6]))
    for k in range(6):
        for i in range(len(lines[k])):
            for bit in (0x01, 0x20):
                changed = bytearray(lines[k])
                changed[i] ^= bit
                tampered = [*lines[:k], bytes(changed), *lines[k + 1 :]]
                # Changing the prev field of k can only be told apart from changing
                # entry k - 1 by the server's stored hashes: both are named.
                assert _first_bad(tampered) in {k - 1, k}, (k, i, bit)


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b.replace(b'{"action"', b'{ "action"'),  # whitespace
        lambda b: b.replace(b'"v":1}', b'"v":1,"action":"x"}'),  # duplicate key
        lambda b: b.replace(b'"v":1', b'"v":1.0'),
        lambda b: b.replace(b'"v":1', b'"v":2'),
        lambda b: b.replace(b'"seq":3', b'"seq":3.0'),
        lambda b: b.replace(b'"seq":3', b'"seq":true'),
        lambda b: b + b" ",
        lambda b: b"[" + b + b"]",
    ],
)
def test_entries_must_be_canonical_and_of_a_known_version(edit: object) -> None:
    """An entry that the log signed but that two readers could read differently (or
    that a newer format wrote) is refused, naming that entry."""
    entries = list(ENTRIES[:3])
    body = edit(ENTRIES[3])  # type: ignore[operator]
    prev = leaf_hash(entries[-1]).hex()
    assert prev in body.decode() or body.startswith(b"[")
    entries.append(body)
    assert _first_bad(_export(entries)) == 3  # re-signed: only the entry itself is wrong


def test_checkpoint_problems() -> None:
    other = nacl.signing.SigningKey(hashlib.sha256(b"other").digest())
    foreign = sign_note(
        Checkpoint(ORIGIN, 12, bytes(32)).body(),
        name=ORIGIN,
        public_key=bytes(other.verify_key),
        sign=lambda m: other.sign(m).signature,
    )
    with pytest.raises(VerificationError, match="checkpoint"):
        _verify(_export(ENTRIES, foreign))
    with pytest.raises(VerificationError, match="after the checkpoint"):
        _verify([*_export(ENTRIES), ENTRIES[0]])
    # A checkpoint given on the command line replaces the embedded one.
    assert _first_bad(_export(ENTRIES), checkpoint_text=_note(ENTRIES[:5])) == 5


def _signed(entries: list[bytes]) -> SignedCheckpoint:
    note = _note(entries)
    return SignedCheckpoint(verify_checkpoint(note, name=ORIGIN, public_key=PUBLIC), note)


def test_F06_equivocation_is_reported_with_both_signed_checkpoints() -> None:
    # The service rewrote entry 2 and re-signed: an old checkpoint of size 5 that a
    # member kept is no prefix of the new log.
    old = _signed(ENTRIES[:5])
    rewritten = _entries(12, start=[*ENTRIES[:2], _forged(2, ENTRIES[1])])
    new_note = _note(rewritten)
    with pytest.raises(EquivocationError) as exc:
        _verify(_export(rewritten, new_note), older=[old])
    assert exc.value.evidence == (old.note, new_note)
    # Two signed checkpoints of one size with different roots.
    fork = _signed(rewritten[:5])
    with pytest.raises(EquivocationError) as exc:
        _verify(_export(ENTRIES), older=[old, fork])
    assert exc.value.evidence == (old.note, fork.note)
    # Consistent history verifies; a checkpoint of a later size than the export fails.
    assert _verify(_export(ENTRIES), older=[old, _signed(ENTRIES)]).size == 12  # type: ignore[attr-defined]
    with pytest.raises(VerificationError, match="stale"):
        _verify(_export(ENTRIES[:4]), older=[old])


def test_the_state_file_keeps_signed_checkpoints_and_refuses_edited_ones(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    save_state(state, [_signed(ENTRIES[:5])])
    save_state(state, [SignedCheckpoint(Checkpoint("other.log/x", 3, bytes(32)))])
    loaded = load_state(state, public_key=PUBLIC, origin=ORIGIN)
    assert [c.checkpoint.size for c in loaded] == [5]
    assert loaded[0].note == _note(ENTRIES[:5])
    data = json.loads(state.read_text())
    assert {c["origin"] for c in data["checkpoints"]} == {ORIGIN, "other.log/x"}
    data["checkpoints"][0]["note"] = data["checkpoints"][0]["note"].replace("\n5\n", "\n6\n")
    state.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="signature"):
        load_state(state, public_key=PUBLIC, origin=ORIGIN)


# --- the command line -------------------------------------------------------------


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_the_cli_takes_the_verifier_key_and_keeps_state(tmp_path: Path) -> None:
    vkey = verifier_key(ORIGIN, PUBLIC)
    state = tmp_path / "state.json"
    runner = CliRunner()
    first = _write(tmp_path / "a.jsonl", _export(ENTRIES[:5]))
    ok = runner.invoke(audit_cli, ["verify", str(first), "--key", vkey, "--state", str(state)])
    assert ok.exit_code == 0, ok.output
    assert "OK: 5 entries" in ok.stdout
    later = _write(tmp_path / "b.jsonl", _export(ENTRIES))
    ok = runner.invoke(audit_cli, ["verify", str(later), "--key", vkey, "--state", str(state)])
    assert ok.exit_code == 0, ok.output
    assert [c["size"] for c in json.loads(state.read_text())["checkpoints"]] == [5, 12]
    # The service now shows a rewritten history: the state file catches it.
    rewritten = _entries(12, start=[*ENTRIES[:2], _forged(2, ENTRIES[1])])
    forged = _write(tmp_path / "c.jsonl", _export(rewritten))
    bad = runner.invoke(audit_cli, ["verify", str(forged), "--key", vkey, "--state", str(state)])
    assert bad.exit_code == 1
    assert "EQUIVOCATION" in bad.stderr
    assert _note(ENTRIES[:5]) in bad.stderr
    assert _note(rewritten) in bad.stderr
    # The plain base64 key works too, with the origin given.
    b64 = base64.b64encode(PUBLIC).decode()
    args = ["verify", str(later), "--key", b64, "--origin", ORIGIN]
    assert runner.invoke(audit_cli, args).exit_code == 0
    wrong_origin = runner.invoke(audit_cli, [*args[:3], vkey, "--origin", "x.example/log"])
    assert wrong_origin.exit_code != 0


def test_the_cli_compares_checkpoints(tmp_path: Path) -> None:
    vkey = verifier_key(ORIGIN, PUBLIC)
    old = tmp_path / "old.txt"
    old.write_text(_note(ENTRIES[:5]))
    new = tmp_path / "new.txt"
    new.write_text(_note(ENTRIES))
    proof = consistency_proof(5, 12, list_subtree_hash([leaf_hash(e) for e in ENTRIES]))
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(
        json.dumps(
            {
                "from_size": 5,
                "tree_size": 12,
                "proof": [base64.b64encode(p).decode() for p in proof],
            }
        )
    )
    runner = CliRunner()
    args = ["compare", "--key", vkey]
    ok = runner.invoke(audit_cli, [*args, str(new), str(old), "--proof", str(proof_file)])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(audit_cli, [*args, str(old), str(old)]).exit_code == 0
    no_proof = runner.invoke(audit_cli, [*args, str(old), str(new)])
    assert no_proof.exit_code == 1
    assert "consistency proof" in no_proof.stderr
    fork = tmp_path / "fork.txt"
    fork.write_text(_note([*ENTRIES[:4], _forged(4, ENTRIES[3])]))
    same_size = runner.invoke(audit_cli, [*args, str(old), str(fork)])
    assert same_size.exit_code == 1
    assert "EQUIVOCATION" in same_size.stderr
    diverged = runner.invoke(audit_cli, [*args, str(fork), str(new), "--proof", str(proof_file)])
    assert diverged.exit_code == 1
    assert "EQUIVOCATION" in diverged.stderr
