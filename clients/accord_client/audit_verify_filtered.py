"""Verification of a filtered (own-organization) audit export: the entries an
auditor may see, each followed by its inclusion proof against the checkpoint's
tree (docs/audit.md "Filtered exports"). Reached through
`accord_client.audit_verify.verify_lines`, which tells the two kinds apart by the
first line; the shared checks (canonical form, checkpoints) live there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson

from accord_client.audit_format import GENESIS_PREV
from accord_client.audit_verify import (
    EquivocationError,
    SignedCheckpoint,
    VerificationError,
    VerifiedLog,
    _check_entry,
    _checkpoint_line,
    _the_checkpoint,
)
from accord_client.envelope_format import b64decode_strict
from accord_client.merkle import leaf_hash, root_from_inclusion


def _proof_root(inclusion: Any, seq: int, leaf: bytes, size: int) -> bytes:
    """The root that an entry's inclusion proof line leads to; a malformed line, or
    one for another entry, position, leaf or tree size, is an error naming `seq`."""
    if not isinstance(inclusion, dict) or set(inclusion) != {
        "seq",
        "tree_size",
        "leaf_hash",
        "proof",
    }:
        raise VerificationError("its inclusion proof line is malformed", seq)
    if inclusion["seq"] != seq or type(inclusion["seq"]) is not int:
        raise VerificationError(
            f"its inclusion proof is for entry {inclusion['seq']!r} (wrong index)", seq
        )
    if inclusion["tree_size"] != size or type(inclusion["tree_size"]) is not int:
        raise VerificationError(
            f"its inclusion proof is for tree size {inclusion['tree_size']!r}, not {size}", seq
        )
    path = inclusion["proof"]
    try:
        claimed = b64decode_strict(inclusion["leaf_hash"])
        nodes = [b64decode_strict(p) for p in path] if isinstance(path, list) else []
    except ValueError as exc:
        raise VerificationError("its inclusion proof holds a malformed hash", seq) from exc
    if claimed != leaf:
        raise VerificationError(
            "altered: its bytes do not hash to the leaf its inclusion proof is for", seq
        )
    root = root_from_inclusion(leaf, seq, size, nodes) if isinstance(path, list) else None
    if root is None:
        raise VerificationError(
            f"its inclusion proof has the wrong shape for entry {seq} of {size}", seq
        )
    return root


@dataclass
class _Failure:
    seq: int | None
    message: str


def verify_filtered(
    lines: Iterator[bytes],
    size: int,
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None,
    previous: list[SignedCheckpoint],
) -> VerifiedLog:
    """A filtered export: every entry is followed by its inclusion proof in the tree
    of `size` entries (the header's size, which must be the checkpoint's). Each
    entry's leaf is recomputed from its bytes and its proof must lead to the
    checkpoint's root; entries must be in ascending order; the hash chain is checked
    between consecutive sequence numbers that are both present. Constant memory: the
    root is known only at the last line, so the verifier keeps the root the first
    proof leads to and the first entry whose proof leads elsewhere, and decides at
    the end which of the two is the first bad entry."""
    failure: _Failure | None = None  # the first error certain without the root
    reference: bytes | None = None  # where the first entry's proof leads
    first_seq: int | None = None
    astray: int | None = None  # the first entry whose proof leads elsewhere
    pending: tuple[int, bytes] | None = None  # (seq, leaf) waiting for its proof line
    last_seq, last_leaf = -1, GENESIS_PREV  # entry 0 chains to the genesis value
    count = 0
    embedded: str | None = None
    garbled: tuple[int, str] | None = None  # an unreadable line: its number, the problem
    for number, raw in enumerate(lines, start=2):
        if failure is not None:  # only the checkpoint is still needed
            if embedded is None and raw.startswith(b'{"checkpoint"'):
                embedded = _checkpoint_line(raw)
            continue
        if embedded is not None:
            raise VerificationError("data after the checkpoint line")
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            document = None
        if garbled is not None:
            # The line before was unreadable: name the entry its proof line is for.
            named = _proved_seq(document) if pending is None else pending[0]
            failure = _Failure(named, f"line {garbled[0]}: {garbled[1]} (altered)")
            continue
        if not isinstance(document, dict):
            garbled = (number, "not a JSON object")
            continue
        if set(document) == {"checkpoint"}:
            if pending is not None:
                failure = _Failure(pending[0], "no inclusion proof follows it")
            embedded = _checkpoint_line(raw)
            continue
        try:
            if set(document) == {"inclusion"}:
                if pending is None:
                    raise VerificationError(
                        f"line {number}: an inclusion proof without its entry", None
                    )
                proved, leaf = pending
                pending = None
                root = _proof_root(document["inclusion"], proved, leaf, size)
                if reference is None:
                    reference, first_seq = root, proved
                elif root != reference and astray is None:
                    astray = proved
                continue
            if pending is not None:
                raise VerificationError("no inclusion proof follows it", pending[0])
            seq = document.get("seq")
            if type(seq) is not int or seq < 0:
                garbled = (number, "an entry without a sequence number")
                continue
            if seq <= last_seq:
                raise VerificationError(
                    f"out of order or repeated: it follows entry {last_seq}", seq
                )
            if seq >= size:
                raise VerificationError(f"beyond the {size} entries the export covers", seq)
            # Sequence number, format version and canonical form; the chain below.
            _check_entry(document, raw, seq, cast(str, document.get("prev")))
            if seq == last_seq + 1 and document.get("prev") != last_leaf:
                # Both present: entry seq - 1 is vouched for by its own proof (checked
                # before this line), so it is this entry that does not chain.
                before = f"entry {last_seq}" if seq else "the log (64 zeros)"
                raise VerificationError(f"altered: its prev is not the leaf hash of {before}", seq)
            leaf = leaf_hash(raw)
            pending, last_seq, last_leaf = (seq, leaf), seq, leaf.hex()
            count += 1
        except VerificationError as exc:
            failure = _Failure(exc.seq, str(exc).removeprefix(f"entry {exc.seq}: "))
    if failure is None and garbled is not None:
        failure = _Failure(pending[0] if pending else None, f"line {garbled[0]}: {garbled[1]}")
    if failure is None and pending is not None:
        failure = _Failure(pending[0], "no inclusion proof follows it")
    try:
        text, checkpoint = _the_checkpoint(checkpoint_text, embedded, public_key, origin)
        if checkpoint.size != size:
            raise VerificationError(
                f"the inclusion proofs are for a tree of {size} entries, the checkpoint "
                f"covers {checkpoint.size}"
            )
    except VerificationError:
        if failure is not None:  # certain whatever the checkpoint says
            raise VerificationError(failure.message, failure.seq) from None
        raise
    # The first entry whose proof does not lead to the signed root.
    stray: int | None = None
    if reference is not None and reference != checkpoint.root_hash:
        stray = first_seq
    elif astray is not None:
        stray = astray
    if stray is not None and (failure is None or failure.seq is None or stray < failure.seq):
        raise VerificationError(
            "altered: its inclusion proof does not lead to the checkpoint's root", stray
        )
    if failure is not None:
        raise VerificationError(failure.message, failure.seq)
    unchecked: list[int] = []
    for old in previous:
        if old.checkpoint.size > size:
            raise VerificationError(
                f"a checkpoint verified before covers {old.checkpoint.size} entries, more "
                f"than this export's {size}: this export is stale or the log was cut short"
            )
        if old.checkpoint.size == size and old.checkpoint.root_hash != checkpoint.root_hash:
            raise EquivocationError(
                f"two checkpoints of size {size} with different roots", (old.note, text)
            )
        if old.checkpoint.size < size:
            unchecked.append(old.checkpoint.size)
    return VerifiedLog(
        size,
        checkpoint.root_hash,
        checkpoint,
        text,
        {size: checkpoint.root_hash},
        filtered=True,
        entries=count,
        unchecked_older=sorted(set(unchecked)),
    )


def _proved_seq(document: Any) -> int | None:
    inclusion = document.get("inclusion") if isinstance(document, dict) else None
    seq = inclusion.get("seq") if isinstance(inclusion, dict) else None
    return seq if type(seq) is int else None
