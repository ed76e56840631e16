"""RFC 9162 (Certificate Transparency 2.0) Merkle trees over SHA-256.

Leaf hash  = SHA-256(0x00 || leaf bytes); node hash = SHA-256(0x01 || left || right).
The tree over n leaves splits at k, the largest power of two smaller than n
(RFC 9162 section 2.1.1). Inclusion and consistency proofs are generated and
verified with the algorithms of sections 2.1.3 and 2.1.4; verification is strict:
wrong sizes, out-of-range indexes and surplus or missing proof nodes all fail.

`CompactRange` keeps only the roots of the perfect subtrees on the tree's right
edge (at most log2(n) hashes), so appending and computing the root are O(log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from the leaf hashes (for tests and small trees; O(n))."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


# --- the right edge of the tree: O(log n) appends ----------------------------


@dataclass
class CompactRange:
    """The perfect-subtree roots covering leaves [0, size), largest first.

    Their sizes are the set bits of `size`, so there are at most 64 of them."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        node = leaf
        size = self.size
        # Merge equal-sized subtrees from the right while the size has a low 1 bit.
        while size & 1:
            node = node_hash(self.hashes.pop(), node)
            size >>= 1
        self.hashes.append(node)
        self.size += 1

    def append_subtree(self, root: bytes, level: int) -> None:
        """Append the 2**level leaves whose perfect subtree has hash `root`; the size
        must be a multiple of 2**level (the subtree is aligned, as in the tree)."""
        if self.size & ((1 << level) - 1):
            raise ValueError("a subtree of 2**level leaves must start at a multiple of it")
        node = root
        size = self.size >> level
        while size & 1:
            node = node_hash(self.hashes.pop(), node)
            size >>= 1
        self.hashes.append(node)
        self.size += 1 << level

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        node = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            node = node_hash(left, node)
        return node

    def copy(self) -> CompactRange:
        return CompactRange(self.size, list(self.hashes))


def aligned_subtrees(start: int, leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The leaves at positions [start, start + len(leaves)) as the fewest aligned
    perfect subtrees, in order: (level, root) with 2**level leaves each, every one
    starting at a multiple of its size. Appending them to a CompactRange of size
    `start` (CompactRange.append_subtree) equals appending the leaves one by one."""
    out: list[tuple[int, bytes]] = []
    position, end = start, start + len(leaves)
    while position < end:
        level = 0
        while (position & ((2 << level) - 1)) == 0 and position + (2 << level) <= end:
            level += 1
        offset = position - start
        nodes = list(leaves[offset : offset + (1 << level)])
        while len(nodes) > 1:
            nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
        out.append((level, nodes[0]))
        position += 1 << level
    return out


# --- proofs -------------------------------------------------------------------

HashRange = Callable[[int, int], bytes]
"""subtree_hash(start, end): MTH of leaves [start, end). Backed by a list in
memory or by stored subtree hashes in the database."""


def list_subtree_hash(hashes: Sequence[bytes]) -> HashRange:
    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(hashes[start:end])

    return subtree


def inclusion_proof(index: int, size: int, subtree: HashRange) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < size:
        raise ValueError("index out of range")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start += k
    proof.reverse()
    return proof


def _hashes_ok(*hashes: bytes) -> bool:
    """Every hash handed to a verifier is exactly 32 bytes: a short or long value is
    malformed input, never something to compare or to hash into a node."""
    return all(len(h) == HASH_BYTES for h in hashes)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root that an inclusion proof leads to (RFC 9162 section 2.1.3.2 without the
    final comparison), or None when the proof is malformed for this index and size
    (wrong length, hashes that are not 32 bytes, index out of range). Lets a verifier
    check many proofs against a root it learns only later."""
    if not 0 <= index < size or not _hashes_ok(leaf, *proof):
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not _hashes_ok(root):
        return False
    computed = root_from_inclusion(leaf, index, size, proof)
    return computed is not None and computed == root


def consistency_proof(old_size: int, new_size: int, subtree: HashRange) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1 (empty when m == n or m == 0)."""
    if not 0 <= old_size <= new_size:
        raise ValueError("sizes out of order")
    if old_size in (0, new_size):
        return []
    return _subproof(old_size, 0, new_size, True, subtree)


def _subproof(m: int, start: int, end: int, complete: bool, subtree: HashRange) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [subtree(start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, start, start + k, complete, subtree), subtree(start + k, end)]
    return [*_subproof(m - k, start + k, end, False, subtree), subtree(start, start + k)]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 (plus the trivial cases: an empty old tree, whose root
    must be the empty root, and equal sizes, whose roots must be equal; both with an
    empty proof)."""
    if not 0 <= old_size <= new_size or not _hashes_ok(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
