"""The offline verifier of an audit log export (needs only this library).

An export is JSON Lines: one entry per line, each line exactly the entry's
canonical bytes (accord_client.audit_format), in sequence order from 0, and a
last line `{"checkpoint": "<signed note>"}`. The verifier recomputes every leaf,
the hash chain and the Merkle root in one pass and constant memory, checks the
checkpoint's signature with the service's published key, and checks that every
older checkpoint it is given (or has kept in its state file) is a prefix of this
log: the root of the first `size` entries must equal the old checkpoint's root.
It reports the first bad entry by sequence number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from accord_client.audit_format import GENESIS_PREV
from accord_client.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from accord_client.merkle import CompactRange, leaf_hash


class VerificationError(Exception):
    """The log does not verify. `seq` is the first bad entry when one can be named."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message if seq is None else f"entry {seq}: {message}")
        self.seq = seq


@dataclass
class VerifiedLog:
    size: int
    root: bytes
    checkpoint: Checkpoint
    prefix_roots: dict[int, bytes] = field(default_factory=dict)


def _parse_line(raw: bytes, index: int) -> dict[str, Any]:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise VerificationError("not valid JSON", index) from exc
    if not isinstance(document, dict):
        raise VerificationError("not a JSON object", index)
    return document


def verify_lines(
    lines: Iterable[bytes],
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None = None,
    older: Iterable[Checkpoint] = (),
) -> VerifiedLog:
    """Verify an export given as its lines (without trailing newlines)."""
    older_by_size: dict[int, Checkpoint] = {c.size: c for c in older}
    compact = CompactRange()
    prefix_roots: dict[int, bytes] = {}
    if 0 in older_by_size:
        prefix_roots[0] = compact.root()
    prev = GENESIS_PREV
    embedded: str | None = None
    for raw in lines:
        if embedded is not None:
            raise VerificationError("data after the checkpoint line")
        index = compact.size
        document = _parse_line(raw, index)
        if set(document) == {"checkpoint"}:
            if not isinstance(document["checkpoint"], str):
                raise VerificationError("checkpoint line is malformed")
            embedded = document["checkpoint"]
            continue
        seq = document.get("seq")
        if seq != index:
            raise VerificationError(
                f"expected sequence number {index}, found {seq!r} (an entry is missing, "
                "duplicated or out of order)",
                index,
            )
        if document.get("prev") != prev:
            # Entry index - 1 no longer hashes to what this entry recorded.
            bad = index - 1 if index > 0 else 0
            raise VerificationError("altered: its hash no longer matches the next entry", bad)
        leaf = leaf_hash(raw)
        compact.append(leaf)
        prev = leaf.hex()
        if compact.size in older_by_size:
            prefix_roots[compact.size] = compact.root()
    text = checkpoint_text if checkpoint_text is not None else embedded
    if text is None:
        raise VerificationError("no checkpoint: give one or export with its checkpoint line")
    try:
        checkpoint = verify_checkpoint(text, name=origin, public_key=public_key, origin=origin)
    except CheckpointError as exc:
        raise VerificationError(f"checkpoint: {exc}") from exc
    root = compact.root()
    if checkpoint.size != compact.size:
        raise VerificationError(
            f"the checkpoint covers {checkpoint.size} entries, the export has {compact.size} "
            "(truncated or extended)",
            min(checkpoint.size, compact.size),
        )
    if checkpoint.root_hash != root:
        last = compact.size - 1 if compact.size else None
        raise VerificationError("the recomputed root does not match the checkpoint", last)
    for old in older_by_size.values():
        if old.size > compact.size:
            raise VerificationError(
                f"an older checkpoint covers {old.size} entries, more than this export"
            )
        if prefix_roots.get(old.size) != old.root_hash:
            raise VerificationError(
                f"this log does not extend the checkpoint of size {old.size}: the first "
                f"{old.size} entries were changed"
            )
    return VerifiedLog(compact.size, root, checkpoint, prefix_roots)


def read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\n")
            if stripped:
                yield stripped


# --- the verifier's state file: the checkpoints it has verified --------------


def load_state(path: Path) -> list[Checkpoint]:
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Checkpoint(c["origin"], int(c["size"]), bytes.fromhex(c["root"]))
        for c in data.get("checkpoints", [])
    ]


def save_state(path: Path, checkpoints: Iterable[Checkpoint]) -> None:
    unique = {(c.origin, c.size): c for c in checkpoints}
    data = {
        "checkpoints": [
            {"origin": c.origin, "size": c.size, "root": c.root_hash.hex()}
            for c in sorted(unique.values(), key=lambda c: c.size)
        ]
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
