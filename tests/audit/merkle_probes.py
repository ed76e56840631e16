"""Systematic corruptions of a valid proof (the kinds transparency-dev/merkle's
tests use, written here from that list): wrong index or size, wrong leaf or
roots, garbage or roots before or after the proof, a flipped bit in each node,
nodes removed, inserted, swapped. Every probe must fail verification."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

EMPTY = hashlib.sha256(b"").digest()
SOME = hashlib.sha256(b"some other hash").digest()


@dataclass(frozen=True)
class InclusionProbe:
    desc: str
    leaf: bytes
    index: int
    size: int
    proof: list[bytes]
    root: bytes


@dataclass(frozen=True)
class ConsistencyProbe:
    desc: str
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: list[bytes]


def _flip(h: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(h)
    out[byte] ^= 1 << bit
    return bytes(out)


def _node_edits(proof: list[bytes]) -> list[tuple[str, list[bytes]]]:
    edits: list[tuple[str, list[bytes]]] = []
    for i in range(len(proof)):
        for byte, bit in ((0, 3), (0, 4), (31, 0)):
            edits.append(
                (
                    f"proof[{i}] byte {byte} bit {bit}",
                    [*proof[:i], _flip(proof[i], byte, bit), *proof[i + 1 :]],
                )
            )
        edits.append((f"proof[{i}] removed", proof[:i] + proof[i + 1 :]))
        edits.append((f"proof[{i}] duplicated", [*proof[: i + 1], proof[i], *proof[i + 1 :]]))
        if i + 1 < len(proof) and proof[i] != proof[i + 1]:
            swapped = list(proof)
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            edits.append((f"proof[{i}] and proof[{i + 1}] swapped", swapped))
    if proof:
        edits.append(("inserted component", [proof[0], SOME, *proof[1:]]))
        edits.append(("truncated to 31 bytes", [proof[0][:31], *proof[1:]]))
        edits.append(("padded to 33 bytes", [proof[0] + b"\x00", *proof[1:]]))
    edits.append(("trailing garbage", [*proof, b""]))
    edits.append(("trailing hash", [*proof, SOME]))
    edits.append(("preceding garbage", [b"", *proof]))
    edits.append(("preceding hash", [SOME, *proof]))
    return edits


def inclusion_probes(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> list[InclusionProbe]:
    p = InclusionProbe
    probes = [
        p("index - 1", leaf, index - 1, size, proof, root),
        p("index + 1", leaf, index + 1, size, proof, root),
        p("index ^ 2", leaf, index ^ 2, size, proof, root),
        p("index = size", leaf, size, size, proof, root),
        p("size * 2", leaf, index, size * 2, proof, root),
        p("size / 2", leaf, index, size // 2, proof, root),
        p("size 0", leaf, index, 0, proof, root),
        p("wrong leaf", SOME, index, size, proof, root),
        p("short leaf", b"WrongLeaf", index, size, proof, root),
        p("leaf bit flip", _flip(leaf, 0, 0), index, size, proof, root),
        p("empty root", leaf, index, size, proof, EMPTY),
        p("random root", leaf, index, size, proof, SOME),
        p("root bit flip", leaf, index, size, proof, _flip(root, 31, 7)),
        p("short root", leaf, index, size, proof, root[:31]),
        p("trailing root", leaf, index, size, [*proof, root], root),
        p("preceding root", leaf, index, size, [root, *proof], root),
    ]
    probes += [p(desc, leaf, index, size, edited, root) for desc, edited in _node_edits(proof)]
    return [
        x
        for x in probes
        if (x.index, x.size, x.leaf, x.root, x.proof) != (index, size, leaf, root, proof)
    ]


def consistency_probes(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[ConsistencyProbe]:
    """For 0 < size1 < size2 (a proof that is not empty)."""
    c = ConsistencyProbe
    probes = [
        c("size1 - 1", size1 - 1, size2, root1, root2, proof),
        c("size1 + 1", size1 + 1, size2, root1, root2, proof),
        c("size1 ^ 2", size1 ^ 2, size2, root1, root2, proof),
        c("size1 0", 0, size2, root1, root2, proof),
        c("size1 = size2", size2, size2, root1, root2, proof),
        c("size2 * 2", size1, size2 * 2, root1, root2, proof),
        c("size2 / 2", size1, size2 // 2, root1, root2, proof),
        c("sizes swapped", size2, size1, root2, root1, proof),
        c("wrong root1", size1, size2, SOME, root2, proof),
        c("wrong root2", size1, size2, root1, SOME, proof),
        c("short root1", size1, size2, b"WrongRoot", root2, proof),
        c("short root2", size1, size2, root1, b"WrongRoot", proof),
        c("root1 bit flip", size1, size2, _flip(root1, 0, 0), root2, proof),
        c("root2 bit flip", size1, size2, root1, _flip(root2, 31, 7), proof),
        c("swapped roots", size1, size2, root2, root1, proof),
        c("empty proof", size1, size2, root1, root2, []),
        c("trailing root1", size1, size2, root1, root2, [*proof, root1]),
        c("trailing root2", size1, size2, root1, root2, [*proof, root2]),
        c("preceding root1", size1, size2, root1, root2, [root1, *proof]),
        c("preceding root2", size1, size2, root1, root2, [root2, *proof]),
        c("preceding proof[0]", size1, size2, root1, root2, [proof[0], *proof]),
    ]
    probes += [c(desc, size1, size2, root1, root2, edited) for desc, edited in _node_edits(proof)]
    return [
        x
        for x in probes
        if (x.size1, x.size2, x.root1, x.root2, x.proof) != (size1, size2, root1, root2, proof)
    ]
