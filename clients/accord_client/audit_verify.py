"""The offline verifier of an audit log export (needs only this library).

An export is JSON Lines: one entry per line, each line exactly the entry's
canonical bytes (accord_client.audit_format), in sequence order from 0, and a
last line `{"checkpoint": "<signed note>"}` (only a complete export ends with it;
`accord-audit verify` insists). The verifier recomputes every leaf, the hash
chain and the Merkle root in one pass and constant memory, checks that every
line is in canonical form (so no two readers can disagree about what an entry
says), checks the checkpoint's signature with the service's published key,
and checks that every older checkpoint it is given (or has kept in its state
file) is a prefix of this log: the root of the first `size` entries must equal the
old checkpoint's root. It reports the first bad entry by sequence number.

Two checkpoints signed by the service that cannot both be true (same size,
different roots; or an older one that is not a prefix of a newer one) are
equivocation (SECURITY-TESTS F06): the error carries both signed notes, which are
the evidence an auditor hands on.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from accord_client.audit_format import FORMAT_VERSION, GENESIS_PREV
from accord_client.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from accord_client.merkle import CompactRange, leaf_hash
from accord_client.strict_json import MAX_JSON_DEPTH, too_deep

STATE_VERSION = 2


class VerificationError(Exception):
    """The log does not verify. `seq` is the first bad entry when one can be named."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message if seq is None else f"entry {seq}: {message}")
        self.seq = seq


class EquivocationError(VerificationError):
    """The service signed two checkpoints that contradict each other. `evidence`
    holds both signed notes (when both are known): keep them and report them."""

    def __init__(self, message: str, evidence: tuple[str | None, str | None]) -> None:
        super().__init__(message)
        self.evidence = evidence


@dataclass(frozen=True)
class SignedCheckpoint:
    """A verified checkpoint and the signed note it came from (None for state kept
    by an older verifier that stored only size and root)."""

    checkpoint: Checkpoint
    note: str | None = None


@dataclass
class VerifiedLog:
    """`size` and `root` are the log's (the checkpoint's). A full export holds all
    `size` entries; a filtered one (`filtered`) holds `entries` of them, each proven
    included, and cannot show that the older checkpoints in `unchecked_older` (their
    sizes) are prefixes of this log: that needs the entries left out, or a
    consistency proof (`accord-audit compare`)."""

    size: int
    root: bytes
    checkpoint: Checkpoint
    note: str
    prefix_roots: dict[int, bytes] = field(default_factory=dict)
    filtered: bool = False
    entries: int = -1
    unchecked_older: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.entries < 0:
            self.entries = self.size


def _parse_line(raw: bytes, index: int) -> dict[str, Any]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise VerificationError("not valid JSON", index) from exc
    if not isinstance(document, dict):
        raise VerificationError("not a JSON object", index)
    return document


def _check_entry(document: dict[str, Any], raw: bytes, index: int, prev: str) -> None:
    """Check one entry at position `index`; `prev` is the leaf hash (hex) of the entry
    before it. Errors name the first sequence number that can no longer be vouched for."""
    seq = document.get("seq")
    if type(seq) is not int or seq != index:
        if seq == index - 1 and document.get("prev") != prev:
            # A second entry numbered index - 1 that does not chain to the first: one
            # of the two was inserted (or repeated), so index - 1 is in doubt.
            raise VerificationError(
                f"two entries claim sequence number {seq} (one was inserted or repeated)", seq
            )
        raise VerificationError(
            f"expected sequence number {index}, found {seq!r} (an entry is missing, "
            "inserted or out of order, or this one was altered)",
            index,
        )
    if document.get("prev") != prev:
        # Entry index - 1 no longer hashes to what this entry recorded.
        raise VerificationError(
            "altered: its hash no longer matches the next entry", max(index - 1, 0)
        )
    version = document.get("v")
    if type(version) is not int or version != FORMAT_VERSION:
        raise VerificationError(f"unknown entry format version {version!r}", index)
    # Canonical form: sorted keys, no whitespace, no duplicate keys, one spelling of
    # every string. The hash covers the bytes as written, so this is about readers,
    # not the chain: two programs must never read different contents from one signed
    # entry. (Floats, which the format excludes, are not searched for inside
    # `details`: a walk of every value would double the verification time, and an
    # orjson round trip already pins how they read.)
    if orjson.dumps(document, option=orjson.OPT_SORT_KEYS) != raw:
        raise VerificationError("not in canonical form", index)
    if too_deep(raw, document):
        raise VerificationError(f"nested deeper than {MAX_JSON_DEPTH} levels", index)


def _check_older_agree(older: list[SignedCheckpoint]) -> None:
    by_size: dict[int, SignedCheckpoint] = {}
    for item in older:
        seen = by_size.setdefault(item.checkpoint.size, item)
        if seen.checkpoint.root_hash != item.checkpoint.root_hash:
            raise EquivocationError(
                f"two checkpoints of size {item.checkpoint.size} with different roots",
                (seen.note, item.note),
            )


FILTERED_HEADER = "filtered_export"


def _filtered_header(raw: bytes | None) -> int | None:
    """The tree size named by a filtered export's first line, or None for a full export."""
    if raw is None or not raw.startswith(b'{"' + FILTERED_HEADER.encode()):
        return None
    document = _parse_line(raw, 0)
    header = document.get(FILTERED_HEADER)
    size = header.get("tree_size") if isinstance(header, dict) else None
    if set(document) != {FILTERED_HEADER} or type(size) is not int or size < 0:
        raise VerificationError("the filtered export's header line is malformed")
    return size


class _EndLine:
    """Passes an export's lines through, noting whether the last one is the
    checkpoint line: only a complete export ends with it (one cut short does not)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.lines = lines
        self.ended = False

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.lines:
            self.ended = raw.startswith(b'{"checkpoint"')
            yield raw


def verify_lines(
    lines: Iterable[bytes],
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None = None,
    older: Iterable[SignedCheckpoint | Checkpoint] = (),
    require_end: bool = False,
) -> VerifiedLog:
    """Verify an export given as its lines (without trailing newlines): a full export,
    or a filtered one (first line `{"filtered_export": ...}`, an inclusion proof after
    every entry). With `require_end`, an export whose last line is not its checkpoint
    line (cut short) does not verify, even when `checkpoint_text` is given."""
    ending = _EndLine(lines)
    result = _verify_lines(
        ending, public_key=public_key, origin=origin, checkpoint_text=checkpoint_text, older=older
    )
    if require_end and not ending.ended:
        raise VerificationError("the export does not end with its checkpoint line: cut short")
    return result


def _verify_lines(
    lines: Iterable[bytes],
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None,
    older: Iterable[SignedCheckpoint | Checkpoint],
) -> VerifiedLog:
    previous = [o if isinstance(o, SignedCheckpoint) else SignedCheckpoint(o) for o in older]
    _check_older_agree(previous)
    iterator = iter(lines)
    first = next(iterator, None)
    header_size = _filtered_header(first)
    if header_size is not None:
        # Imported here: the filtered verifier builds on this module's helpers.
        from accord_client.audit_verify_filtered import verify_filtered

        return verify_filtered(
            iterator,
            header_size,
            public_key=public_key,
            origin=origin,
            checkpoint_text=checkpoint_text,
            previous=previous,
        )
    if first is not None:
        iterator = itertools.chain((first,), iterator)
    return _verify_full(
        iterator,
        public_key=public_key,
        origin=origin,
        checkpoint_text=checkpoint_text,
        previous=previous,
    )


def _verify_full(
    lines: Iterable[bytes],
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None,
    previous: list[SignedCheckpoint],
) -> VerifiedLog:
    log = FullLog(previous)
    for raw in lines:
        log.line(raw)
    return log.finish(public_key=public_key, origin=origin, checkpoint_text=checkpoint_text)


class FullLog:
    """A full export being verified, line by line (`line`) or, for runs of lines
    already checked elsewhere (accord_client.audit_verify_parallel), by the perfect
    subtrees they form (`extend`); `finish` checks the checkpoint and older ones."""

    def __init__(self, previous: list[SignedCheckpoint]) -> None:
        self.previous = previous
        self.wanted = {o.checkpoint.size for o in previous}
        self.compact = CompactRange()
        self.prefix_roots: dict[int, bytes] = {}
        if 0 in self.wanted:
            self.prefix_roots[0] = self.compact.root()
        self.prev = GENESIS_PREV
        self.embedded: str | None = None

    def line(self, raw: bytes) -> None:
        if self.embedded is not None:
            raise VerificationError("data after the checkpoint line")
        index = self.compact.size
        document = _parse_line(raw, index)
        if set(document) == {"checkpoint"}:
            if not isinstance(document["checkpoint"], str):
                raise VerificationError("checkpoint line is malformed")
            self.embedded = document["checkpoint"]
            return
        _check_entry(document, raw, index, self.prev)
        leaf = leaf_hash(raw)
        self.compact.append(leaf)
        self.prev = leaf.hex()
        if self.compact.size in self.wanted:
            self.prefix_roots[self.compact.size] = self.compact.root()

    def extend(self, subtrees: Iterable[tuple[int, bytes]], last_leaf: str) -> None:
        """Entries that verified as a run continuing this log (their first sequence
        number is `compact.size`, their first `prev` is `self.prev`), given as the
        aligned perfect subtrees (level, root) they form, in order; no older checkpoint
        may end inside the run (the caller checks), only at its end."""
        for level, root in subtrees:
            self.compact.append_subtree(root, level)
        self.prev = last_leaf
        if self.compact.size in self.wanted:
            self.prefix_roots[self.compact.size] = self.compact.root()

    def finish(self, *, public_key: bytes, origin: str, checkpoint_text: str | None) -> VerifiedLog:
        compact, previous = self.compact, self.previous
        text, checkpoint = _the_checkpoint(checkpoint_text, self.embedded, public_key, origin)
        root = compact.root()
        if checkpoint.size != compact.size:
            raise VerificationError(
                f"the checkpoint covers {checkpoint.size} entries, the export has "
                f"{compact.size} (truncated or extended)",
                min(checkpoint.size, compact.size),
            )
        if checkpoint.root_hash != root:
            last = compact.size - 1 if compact.size else None
            raise VerificationError("the recomputed root does not match the checkpoint", last)
        for old in previous:
            size = old.checkpoint.size
            if size > compact.size:
                raise VerificationError(
                    f"a checkpoint verified before covers {size} entries, more than this "
                    f"export's {compact.size}: this export is stale or the log was cut short"
                )
            if self.prefix_roots.get(size) != old.checkpoint.root_hash:
                raise EquivocationError(
                    f"this log does not extend the checkpoint of size {size} verified "
                    f"before: the first {size} entries are not what the service signed then",
                    (old.note, text),
                )
        return VerifiedLog(compact.size, root, checkpoint, text, self.prefix_roots)


def _the_checkpoint(
    given: str | None, embedded: str | None, public_key: bytes, origin: str
) -> tuple[str, Checkpoint]:
    text = given if given is not None else embedded
    if text is None:
        raise VerificationError("no checkpoint: give one or export with its checkpoint line")
    try:
        return text, verify_checkpoint(text, name=origin, public_key=public_key, origin=origin)
    except CheckpointError as exc:
        raise VerificationError(f"checkpoint: {exc}") from exc


def _checkpoint_line(raw: bytes) -> str:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise VerificationError("checkpoint line is malformed") from exc
    if not isinstance(document, dict) or not isinstance(document.get("checkpoint"), str):
        raise VerificationError("checkpoint line is malformed")
    note: str = document["checkpoint"]
    return note


def read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\n")
            if stripped:
                yield stripped


# --- the verifier's state file: the checkpoints it has verified --------------


def load_state(path: Path, *, public_key: bytes, origin: str) -> list[SignedCheckpoint]:
    """The checkpoints of this log (origin) verified before. Signed notes in the
    file are verified again, so a state file edited by hand cannot vouch for
    anything; entries of other logs are left alone."""
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[SignedCheckpoint] = []
    for item in data.get("checkpoints", []):
        if item.get("origin") != origin:
            continue
        note = item.get("note")
        if isinstance(note, str):
            checkpoint = verify_checkpoint(note, name=origin, public_key=public_key, origin=origin)
            out.append(SignedCheckpoint(checkpoint, note))
        else:  # written by a verifier that kept only size and root
            out.append(
                SignedCheckpoint(Checkpoint(origin, int(item["size"]), bytes.fromhex(item["root"])))
            )
    return out


def save_state(path: Path, checkpoints: Iterable[SignedCheckpoint]) -> None:
    """Keep every checkpoint verified (one per origin and size), written atomically.
    Entries of other origins already in the file are kept."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        kept = json.loads(path.read_text(encoding="utf-8")).get("checkpoints", [])
    unique: dict[tuple[str, int], dict[str, Any]] = {
        (str(c.get("origin")), int(c.get("size", -1))): c for c in kept
    }
    for item in checkpoints:
        c = item.checkpoint
        unique[(c.origin, c.size)] = {
            "origin": c.origin,
            "size": c.size,
            "root": c.root_hash.hex(),
            "note": item.note,
        }
    data = {
        "version": STATE_VERSION,
        "checkpoints": [unique[k] for k in sorted(unique, key=lambda k: (k[0], k[1]))],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
