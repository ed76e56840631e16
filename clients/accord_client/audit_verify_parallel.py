"""The offline verifier on every core: `verify_file` checks an export file exactly as
`audit_verify.verify_lines` checks its lines, in the same verdict and the same
error (message, first bad sequence number, evidence), whatever the number of
processes (tests/audit/test_parallel_verify.py).

How: parsing a line, checking it is canonical and of a known version, and hashing
it do not depend on other lines, and they are nearly all the work. The file is cut
into byte ranges on line boundaries; a pool of processes takes one range each, and
for the longest run of lines at its start that verify as consecutive entries
(sequence numbers counting up from the run's first, each `prev` the leaf hash of
the line before) returns that first sequence number and `prev`, the last leaf hash
and the run's aligned perfect subtrees (a few dozen hashes for thousands of
entries). This process takes the runs in file order: a run that continues the log
(its first sequence number is the log's size, its first `prev` the last leaf) joins
the tree as its subtrees; whatever is left of a range (the checkpoint line, or
anything that did not verify) is read again here and checked line by line by the
single-process code (`FullLog.line`), which names the error. So every line is
either checked by that code in the context the single-process verifier gives it,
or by the same conditions (`_check_entry`'s, inlined in the worker) in a context
(sequence number, `prev`) that this process then confirms.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson

from accord_client.audit_format import FORMAT_VERSION
from accord_client.audit_verify import (
    FullLog,
    SignedCheckpoint,
    VerificationError,
    VerifiedLog,
    _check_older_agree,
    read_lines,
    verify_lines,
)
from accord_client.checkpoint import Checkpoint
from accord_client.merkle import LEAF_PREFIX, aligned_subtrees
from accord_client.strict_json import too_deep

CHUNK_BYTES = 4 * 1024 * 1024
"""Bytes per range (about 5,000 entries): small enough that a worker holds little,
large enough that the pool's per-task cost is nothing."""

_CHECKPOINT_START = b'{"checkpoint"'
_FILTERED_START = b'{"filtered_export'
_LEAF = hashlib.sha256(LEAF_PREFIX)


class _Run(NamedTuple):
    """What a worker found in the byte range [start, end): its first `entries` entries
    (non-empty lines) verify as a run."""

    start: int
    end: int
    entries: int
    first_seq: int
    first_prev: object
    last_leaf: str
    subtrees: list[tuple[int, bytes]]
    ends_like_checkpoint: bool
    whole: bool  # every line of the range is in the run


def default_jobs() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _check_range(task: tuple[str, int, int]) -> _Run:
    """The worker: the run of verifying entries at the start of one byte range.

    An entry is in the run when `audit_verify._check_entry(document, raw, index,
    prev)` would pass for it (the condition below is that function's, inlined for
    speed: it is most of the verifier's time), with `index` and `prev` counted from
    the run's first entry. A checkpoint line has no sequence number: it ends a run."""
    path, start, end = task
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    leaves: list[bytes] = []
    first_seq, first_prev, prev = -1, None, ""
    last = b""
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    whole = False
    for raw in data.split(b"\n"):
        if not raw:
            continue
        try:
            document = loads(raw)
        except orjson.JSONDecodeError:
            break
        if type(document) is not dict:
            break
        seq = document.get("seq")
        if not leaves:
            if type(seq) is not int or seq < 0:
                break
            first_seq, first_prev = seq, document.get("prev")
            prev = first_prev if isinstance(first_prev, str) else ""
        version = document.get("v")
        if (
            type(seq) is not int
            or seq != first_seq + len(leaves)
            or document.get("prev") != prev
            or type(version) is not int
            or version != FORMAT_VERSION
            or dumps(document, option=sort_keys) != raw
            or too_deep(raw, document)
        ):
            break
        digest = _LEAF.copy()
        digest.update(raw)
        leaf = digest.digest()
        leaves.append(leaf)
        prev = leaf.hex()
        last = raw
    else:
        whole = True
    subtrees = aligned_subtrees(first_seq, leaves) if leaves else []
    return _Run(
        start,
        end,
        len(leaves),
        first_seq,
        first_prev,
        prev,
        subtrees,
        last.startswith(_CHECKPOINT_START),
        whole,
    )


def _ranges(path: Path, chunk_bytes: int) -> Iterator[tuple[str, int, int]]:
    """Byte ranges of about `chunk_bytes`, each ending just after a newline (or at the
    end of the file), so every line lies in exactly one."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = 0
        while start < size:
            end = size
            offset = start + max(1, chunk_bytes) - 1
            if offset + 1 < size:
                handle.seek(offset)
                while block := handle.read(64 * 1024):
                    found = block.find(b"\n")
                    if found >= 0:
                        end = offset + found + 1
                        break
                    offset += len(block)
            yield str(path), start, end
            start = end


def _lines(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The non-empty lines in [start, end), as read_lines gives them."""
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    return (raw for raw in data.split(b"\n") if raw)


@contextlib.contextmanager
def _runs(path: Path, chunk_bytes: int, jobs: int) -> Iterator[Iterator[_Run]]:
    tasks = _ranges(path, chunk_bytes)
    if jobs <= 1:
        yield map(_check_range, tasks)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = context.Pool(jobs)
    try:
        yield pool.imap(_check_range, tasks)
    except BaseException:
        pool.terminate()  # an error found: the other ranges are not needed
        raise
    else:
        pool.close()
    finally:
        pool.join()


def _continues(log: FullLog, run: _Run) -> bool:
    size = log.compact.size
    return (
        run.entries > 0
        and log.embedded is None
        and run.first_seq == size
        and run.first_prev == log.prev
        and not any(size < w < size + run.entries for w in log.wanted)
    )


def verify_file(
    path: Path,
    *,
    public_key: bytes,
    origin: str,
    checkpoint_text: str | None = None,
    older: Iterable[SignedCheckpoint | Checkpoint] = (),
    require_end: bool = False,
    jobs: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[int], object] | None = None,
) -> VerifiedLog:
    """Verify the export in the file at `path` with `jobs` processes (default: one
    per core); the result and any error are those of `verify_lines(read_lines(path),
    ...)`. A filtered export is verified by that function, in this process."""
    previous = [o if isinstance(o, SignedCheckpoint) else SignedCheckpoint(o) for o in older]
    first = _first_line(path)
    if first is not None and first.startswith(_FILTERED_START):
        return verify_lines(
            _counted(read_lines(path), progress),
            public_key=public_key,
            origin=origin,
            checkpoint_text=checkpoint_text,
            older=previous,
            require_end=require_end,
        )
    _check_older_agree(previous)
    log = FullLog(previous)
    ended = False
    with _runs(path, chunk_bytes, jobs or default_jobs()) as runs:
        for run in runs:
            done = 0
            if _continues(log, run):
                log.extend(run.subtrees, run.last_leaf)
                ended, done = run.ends_like_checkpoint, run.entries
            if done < run.entries or not run.whole:
                lines = _lines(path, run.start, run.end)
                for raw in itertools.islice(lines, done, None):
                    ended = raw.startswith(_CHECKPOINT_START)
                    log.line(raw)
            if progress is not None:
                progress(run.end - run.start)
    result = log.finish(public_key=public_key, origin=origin, checkpoint_text=checkpoint_text)
    if require_end and not ended:
        raise VerificationError("the export does not end with its checkpoint line: cut short")
    return result


def _first_line(path: Path) -> bytes | None:
    with path.open("rb") as handle:
        for line in handle:
            if stripped := line.rstrip(b"\n"):
                return stripped
    return None


def _counted(lines: Iterator[bytes], progress: Callable[[int], object] | None) -> Iterator[bytes]:
    for raw in lines:
        if progress is not None:
            progress(len(raw) + 1)
        yield raw
