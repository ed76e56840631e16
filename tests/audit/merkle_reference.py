"""A deliberately naive Merkle tree written straight from the definitions of
RFC 9162 section 2.1 (MTH, PATH, PROOF/SUBPROOF), over the leaf *inputs*, with
no shared code with accord_client.merkle. The fast code is checked against it.

Slow on purpose: every MTH recomputes its whole range.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

Leaves = Sequence[bytes]


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: Leaves) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: Leaves) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def proof(m: int, d: Leaves) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1, for 0 < m <= n."""
    return _subproof(m, d, True)


def _subproof(m: int, d: Leaves, b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), mth(d[:k])]
