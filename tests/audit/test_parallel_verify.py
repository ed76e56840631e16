"""The verifier on every core (accord_client.audit_verify_parallel.verify_file) gives,
for every export, the verdict and the exact error of the single-process verifier
(verify_lines over read_lines): the same message, first bad sequence number and
equivocation evidence, whatever the number of processes and wherever the file is cut
into ranges. The negative cases are those of tests/audit/test_verifier.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from accord_client.audit_format import entry_document
from accord_client.audit_verify import (
    SignedCheckpoint,
    VerificationError,
    read_lines,
    verify_lines,
)
from accord_client.audit_verify_parallel import verify_file
from accord_client.checkpoint import verify_checkpoint
from accord_client.merkle import leaf_hash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.audit.test_verifier import (
    ENTRIES,
    NOTE,
    ORIGIN,
    PUBLIC,
    T0,
    _entries,
    _export,
    _forged,
    _note,
)

Lines = list[bytes]
Case = tuple[str, Lines, dict[str, Any]]
AWKWARD_CHUNKS = (1, 2, 37, 255, 4096, 4 * 1024 * 1024)


def _signed(entries: Lines) -> SignedCheckpoint:
    note = _note(entries)
    return SignedCheckpoint(verify_checkpoint(note, name=ORIGIN, public_key=PUBLIC), note)


def _cases() -> list[Case]:
    """Every negative case of test_verifier.py (and the positive ones), as files."""
    e = ENTRIES
    out: list[Case] = [
        ("whole", _export(e), {}),
        ("empty log", _export([]), {}),
        ("no checkpoint at all", _export(e, NOTE)[:-1], {}),
        ("truncated", _export(e[:-3], NOTE), {}),
        ("extended", _export(_entries(14, start=e), NOTE), {}),
        ("data after the checkpoint", [*_export(e), e[0]], {}),
        ("checkpoint given", _export(e), {"checkpoint_text": _note(e[:5])}),
        ("cut short, required", _export(e)[:-1], {"checkpoint_text": NOTE, "require_end": True}),
        ("ends, required", _export(e), {"require_end": True}),
    ]
    for k in (0, 1, 5, 10):
        swapped = list(e)
        swapped[k], swapped[k + 1] = swapped[k + 1], swapped[k]
        prev = e[k - 1] if k else None
        out += [
            (f"deleted {k}", _export([*e[:k], *e[k + 1 :]], NOTE), {}),
            (f"swapped {k}", _export(swapped, NOTE), {}),
            (f"inserted {k}", _export([*e[:k], _forged(k, prev), *e[k:]], NOTE), {}),
            (f"repeated {k}", _export([*e[: k + 1], e[k], *e[k + 1 :]], NOTE), {}),
            (
                f"renumbered {k}",
                _export([*e[:k], e[k].replace(b'"seq":', b'"seq":1', 1), *e[k + 1 :]], NOTE),
                {},
            ),
        ]
    six = _export(e[:6], _note(e[:6]))
    for k in range(6):
        for i in range(0, len(six[k]), 29):
            changed = bytearray(six[k])
            changed[i] ^= 0x20
            out.append((f"byte {i} of {k}", [*six[:k], bytes(changed), *six[k + 1 :]], {}))
    for name, edit in EDITS:
        edited = [*e[:3], edit(e[3])]
        out.append((f"edit: {name}", _export(edited), {}))
    old = _signed(e[:5])
    rewritten = _entries(12, start=[*e[:2], _forged(2, e[1])])
    out += [
        ("equivocation: rewritten", _export(rewritten), {"older": [old]}),
        ("equivocation: fork", _export(e), {"older": [old, _signed(rewritten[:5])]}),
        ("older prefixes", _export(e), {"older": [old, _signed(e), _signed(e[:1])]}),
        ("older of size 0", _export(e), {"older": [_signed([])]}),
        ("stale", _export(e[:4]), {"older": [old]}),
    ]
    return out


EDITS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("whitespace", lambda b: b.replace(b'{"action"', b'{ "action"')),
    ("duplicate key", lambda b: b.replace(b'"v":1}', b'"v":1,"action":"x"}')),
    ("same key twice", lambda b: b.replace(b'"v":1}', b'"v":1,"v":1}')),
    ("float version", lambda b: b.replace(b'"v":1', b'"v":1.0')),
    ("version 2", lambda b: b.replace(b'"v":1', b'"v":2')),
    ("float seq", lambda b: b.replace(b'"seq":3', b'"seq":3.0')),
    ("boolean seq", lambda b: b.replace(b'"seq":3', b'"seq":true')),
    ("trailing space", lambda b: b + b" "),
    ("carriage return", lambda b: b + b"\r"),
    ("an array", lambda b: b"[" + b + b"]"),
    ("NaN", lambda b: b.replace(b'"v":1}', b'"v":1,"w":NaN}')),
    ("Infinity", lambda b: b.replace(b'"v":1}', b'"v":1,"w":-Infinity}')),
    ("byte order mark", lambda b: b"\xef\xbb\xbf" + b),
    ("not UTF-8", lambda b: b.replace(b'"subj-', b'"\xff\xfe-')),
    ("lone surrogate", lambda b: b.replace(b'"subj-', b'"\\ud800-')),
    ("escaped letter", lambda b: b.replace(b'"subj-', b'"\\u0073ubj-')),
    ("negative zero", lambda b: b.replace(b'"v":1}', b'"v":1,"w":-0}')),
    ("exponent", lambda b: b.replace(b'"v":1}', b'"v":1,"w":1E2}')),
    ("huge integer", lambda b: b.replace(b'"v":1}', b'"v":1,"w":18446744073709551616}')),
]


def _write(path: Path, lines: Lines, *, ending: bytes = b"\n", last: bool = True) -> Path:
    path.write_bytes(ending.join(lines) + (ending if last else b""))
    return path


def _outcome(run: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        result = run()
    except VerificationError as exc:
        return (type(exc).__name__, str(exc), exc.seq, getattr(exc, "evidence", None))
    return ("ok", result.size, result.root, result.note, sorted(result.prefix_roots.items()))


def _single(path: Path, kw: dict[str, Any]) -> tuple[Any, ...]:
    return _outcome(lambda: verify_lines(read_lines(path), public_key=PUBLIC, origin=ORIGIN, **kw))


def _parallel(path: Path, kw: dict[str, Any], jobs: int, chunk: int) -> tuple[Any, ...]:
    return _outcome(
        lambda: verify_file(
            path, public_key=PUBLIC, origin=ORIGIN, jobs=jobs, chunk_bytes=chunk, **kw
        )
    )


CASES = _cases()


@pytest.mark.parametrize(("name", "lines", "kw"), CASES, ids=[c[0] for c in CASES])
def test_every_case_has_the_single_process_outcome_at_every_cut(
    tmp_path: Path, name: str, lines: Lines, kw: dict[str, Any]
) -> None:
    path = _write(tmp_path / "export.jsonl", lines)
    expected = _single(path, kw)
    for chunk in AWKWARD_CHUNKS:
        assert _parallel(path, kw, 1, chunk) == expected, (name, chunk)


def test_the_cases_cover_both_verdicts_and_many_errors(tmp_path: Path) -> None:
    """The comparison above can fail: the cases differ among themselves."""
    outcomes = [_single(_write(tmp_path / f"{i}.jsonl", c[1]), c[2]) for i, c in enumerate(CASES)]
    assert {o[0] for o in outcomes} == {"ok", "VerificationError", "EquivocationError"}
    assert len({o[1] for o in outcomes if o[0] != "ok"}) >= 12
    assert len({o[2] for o in outcomes if o[0] != "ok"}) >= 6  # first bad entries


# Every case but most single-byte changes (a pool per verification is slow), each with
# one of the process counts.
SAMPLED = [c for i, c in enumerate(CASES) if not c[0].startswith("byte") or i % 9 == 0]


@pytest.mark.parametrize("jobs", [2, 3, 7])
def test_the_same_outcome_whatever_the_number_of_processes(tmp_path: Path, jobs: int) -> None:
    for i, (name, lines, kw) in enumerate(SAMPLED):
        if i % 3 != (2, 3, 7).index(jobs):
            continue
        path = _write(tmp_path / f"{i}.jsonl", lines)
        expected = _single(path, kw)
        chunk = (37, 700, 4 * 1024 * 1024)[i % 3]
        assert _parallel(path, kw, jobs, chunk) == expected, (name, jobs, chunk)


def test_line_endings_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    lines = _export(ENTRIES)
    padded = [lines[0], b"", b"", *lines[1:6], b"", *lines[6:]]
    files = [
        _write(tmp_path / "a.jsonl", padded),
        _write(tmp_path / "b.jsonl", lines, last=False),
        _write(tmp_path / "c.jsonl", lines, ending=b"\r\n"),
        _write(tmp_path / "d.jsonl", [*lines, b"", b""]),
    ]
    for path in files:
        expected = _single(path, {"require_end": True})
        for chunk in AWKWARD_CHUNKS:
            for jobs in (1, 2):
                got = _parallel(path, {"require_end": True}, jobs, chunk)
                assert got == expected, (path.name, chunk, jobs)
    assert _single(files[0], {})[0] == "ok"
    assert _single(files[2], {})[0] == "VerificationError"  # \r is not canonical


def test_a_filtered_export_goes_to_the_filtered_verifier(tmp_path: Path) -> None:
    header = b'{"filtered_export":{"tree_size":"x"}}'
    path = _write(tmp_path / "f.jsonl", [header, *_export(ENTRIES)])
    expected = _single(path, {})
    assert "filtered export's header" in expected[1]
    assert _parallel(path, {}, 2, 64) == expected


# --- strictness: nothing the strict reader refuses is accepted ----------------------


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _with_details(details: dict[str, Any]) -> bytes:
    prev = leaf_hash(ENTRIES[2]).hex()
    document = entry_document(
        seq=3,
        at=T0,
        action="disclosure",
        actor={"principal": "p", "org": "o", "sector": "s"},
        subject=None,
        counterpart=None,
        details=details,
        prev=prev,
    )
    # orjson's canonical bytes: canonical_json itself refuses to nest this deep.
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


STRICT_REFUSES = {"duplicate key", "same key twice", "NaN", "Infinity", "byte order mark",
                  "not UTF-8"}  # fmt: skip


@pytest.mark.parametrize(("name", "edit"), EDITS, ids=[e[0] for e in EDITS])
def test_lines_that_are_not_canonical_or_strict_json_are_refused(
    tmp_path: Path, name: str, edit: Callable[[bytes], bytes]
) -> None:
    from accord_client.strict_json import StrictJSONError, loads_strict

    line = edit(ENTRIES[3])
    path = _write(tmp_path / "e.jsonl", _export([*ENTRIES[:3], line]))
    for jobs in (1, 2):
        got = _parallel(path, {}, jobs, 100)
        assert got[0] == "VerificationError"
        assert got[2] == 3, name
    refused = True
    try:
        loads_strict(line)
    except StrictJSONError:
        refused = True
    else:
        refused = False
    assert refused is (name in STRICT_REFUSES)


def test_nesting_deeper_than_the_strict_reader_accepts_is_refused(tmp_path: Path) -> None:
    from accord_client.strict_json import MAX_JSON_DEPTH, StrictJSONError, loads_strict

    # The entry is depth 0 and `details` depth 1: its key at depth 2 holds the lists.
    deepest = MAX_JSON_DEPTH - 2
    for depth, accepted in ((deepest, True), (deepest + 1, False)):
        line = _with_details({"deep": _nested(depth)})
        try:
            loads_strict(line)
            strict_ok = True
        except StrictJSONError:
            strict_ok = False
        assert strict_ok is accepted
        entries = [*ENTRIES[:3], line]
        path = _write(tmp_path / f"d{depth}.jsonl", _export(entries))
        expected = _single(path, {})
        assert (expected[0] == "ok") is accepted, expected
        if not accepted:
            assert expected[2] == 3
            assert "nested deeper" in expected[1]
        for jobs in (1, 2):
            assert _parallel(path, {}, jobs, 300) == expected
    # Brackets inside strings are counted, then the real depth is looked at.
    line = _with_details({"text": "[" * 80})
    path = _write(tmp_path / "s.jsonl", _export([*ENTRIES[:3], line]))
    assert _parallel(path, {}, 2, 300)[0] == "ok"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=0, max_value=10_000),
    insert=st.binary(max_size=4) | st.sampled_from([b"{", b"}", b'"', b",", b"\\", b" "]),
    drop=st.integers(min_value=0, max_value=3),
)
def test_any_mutated_line_the_strict_reader_refuses_is_refused(
    tmp_path: Path, position: int, insert: bytes, drop: int
) -> None:
    from accord_client.strict_json import StrictJSONError, loads_strict

    original = ENTRIES[3]
    at = position % (len(original) + 1)
    line = original[:at] + insert + original[at + drop :]
    path = _write(tmp_path / "m.jsonl", _export([*ENTRIES[:3], line]))
    got = _parallel(path, {}, 1, 200)
    assert got == _single(path, {})
    try:
        loads_strict(line)
    except StrictJSONError:
        assert got[0] != "ok"


# --- random damage, random cuts ----------------------------------------------------

_DAMAGE = st.sampled_from(["flip", "delete", "duplicate", "swap", "blank", "crlf", "cut", "junk"])


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    damage=st.lists(st.tuples(_DAMAGE, st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    chunk=st.integers(min_value=1, max_value=3000),
    older=st.sampled_from([0, 5, 12]),
)
def test_random_damage_gives_the_single_process_outcome(
    tmp_path: Path, damage: list[tuple[str, int, int]], chunk: int, older: int
) -> None:
    data = bytearray(b"\n".join(_export(ENTRIES)) + b"\n")
    for kind, where, byte in damage:
        lines = [bytes(line) for line in data.split(b"\n")]
        k = where % len(lines)
        if kind == "flip" and data:
            data[where % len(data)] ^= byte or 1
        elif kind == "delete":
            del lines[k]
        elif kind == "duplicate":
            lines.insert(k, lines[k])
        elif kind == "swap" and k + 1 < len(lines):
            lines[k], lines[k + 1] = lines[k + 1], lines[k]
        elif kind == "blank":
            lines.insert(k, b"")
        elif kind == "crlf":
            lines[k] += b"\r"
        elif kind == "cut":
            data = data[: where % (len(data) + 1)]
        elif kind == "junk":
            lines.insert(k, json.dumps({"junk": byte}).encode())
        if kind not in {"flip", "cut"}:
            data = bytearray(b"\n".join(lines))
    path = tmp_path / "r.jsonl"
    path.write_bytes(bytes(data))
    kw: dict[str, Any] = {"older": [_signed(ENTRIES[:older])], "require_end": True}
    assert _parallel(path, kw, 1, chunk) == _single(path, kw)


@given(start=st.integers(0, 70), count=st.integers(0, 70))
def test_aligned_subtrees_join_the_tree_as_their_leaves_would(start: int, count: int) -> None:
    from accord_client.merkle import CompactRange, aligned_subtrees

    leaves = [leaf_hash(b"%d" % i) for i in range(start + count)]
    one_by_one, joined = CompactRange(), CompactRange()
    for leaf in leaves:
        one_by_one.append(leaf)
    for leaf in leaves[:start]:
        joined.append(leaf)
    subtrees = aligned_subtrees(start, leaves[start:])
    for level, root in subtrees:
        joined.append_subtree(root, level)
    assert joined == one_by_one
    assert len(subtrees) <= 2 * max(1, count).bit_length()


def test_the_cli_takes_jobs_and_says_the_same_whatever_their_number(tmp_path: Path) -> None:
    from accord_client.audit_cli import app as audit_cli
    from accord_client.checkpoint import verifier_key
    from typer.testing import CliRunner

    key = verifier_key(ORIGIN, PUBLIC)
    good = _write(tmp_path / "good.jsonl", _export(ENTRIES))
    bad = _write(tmp_path / "bad.jsonl", _export([*ENTRIES[:4], *ENTRIES[5:]], NOTE))
    runner = CliRunner()
    outputs = []
    for jobs in ("1", "3"):
        ok = runner.invoke(audit_cli, ["verify", str(good), "--key", key, "--jobs", jobs])
        assert ok.exit_code == 0, ok.output
        failed = runner.invoke(audit_cli, ["verify", str(bad), "--key", key, "--jobs", jobs])
        assert failed.exit_code == 1
        outputs.append((ok.stdout, failed.stderr.splitlines()[-1]))
    assert outputs[0] == outputs[1]
    assert "entry 4" in outputs[0][1]
    assert runner.invoke(audit_cli, ["verify", str(good), "--key", key, "--jobs", "0"]).exit_code
