"""RFC 9162 Merkle trees: the published RFC 6962 vectors of transparency-dev/merkle,
every proof for every size up to 64 checked against a naive reference written from
the RFC (and every systematic corruption of it fails), and property tests for
large random sizes."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from accord_client.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    list_subtree_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.audit import merkle_reference as ref
from tests.audit.merkle_probes import consistency_probes, inclusion_probes

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "rfc6962_transparency_dev.json").read_text()
)
CT_LEAVES = [bytes.fromhex(h) for h in VECTORS["leaf_inputs"]]
CT_ROOTS = [bytes.fromhex(h) for h in VECTORS["roots"]]
CT_NODES = [[bytes.fromhex(h) for h in level] for level in VECTORS["node_hashes"]]
CT_HASHES = [leaf_hash(d) for d in CT_LEAVES]

# 64 distinct leaf inputs of varying lengths (including the empty input).
INPUTS = [bytes(range(i % 7)) + i.to_bytes(2, "big") * (i % 3) for i in range(64)]
HASHES = [leaf_hash(d) for d in INPUTS]


def _hex(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


# --- published vectors ----------------------------------------------------------


def test_published_leaf_and_node_hashes() -> None:
    assert CT_ROOTS[0] == EMPTY_ROOT
    assert CT_NODES[0] == CT_HASHES
    for level in range(1, len(CT_NODES)):
        below = CT_NODES[level - 1]
        expected = [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)]
        assert expected == CT_NODES[level]


def test_published_roots_and_compact_ranges_for_every_size() -> None:
    compact = CompactRange()
    for n in range(len(CT_LEAVES) + 1):
        assert root_from_leaf_hashes(CT_HASHES[:n]) == CT_ROOTS[n]
        assert ref.mth(CT_LEAVES[:n]) == CT_ROOTS[n]
        assert compact.root() == CT_ROOTS[n]
        assert compact.size == n
        assert compact.hashes == [CT_NODES[lv][ix] for lv, ix in VECTORS["compact_ranges"][n]]
        if n < len(CT_HASHES):
            compact.append(CT_HASHES[n])


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: f"{v['index']}-{v['size']}")
def test_published_inclusion_proofs(vector: dict[str, Any]) -> None:
    index, size, published = vector["index"], vector["size"], vector["proof"]
    generated = inclusion_proof(index, size, list_subtree_hash(CT_HASHES[:size]))
    assert _hex(generated) == published
    proof = [bytes.fromhex(h) for h in published]
    assert verify_inclusion(CT_HASHES[index], index, size, proof, CT_ROOTS[size])
    for probe in inclusion_probes(CT_HASHES[index], index, size, proof, CT_ROOTS[size]):
        assert not verify_inclusion(probe.leaf, probe.index, probe.size, probe.proof, probe.root), (
            probe.desc
        )


@pytest.mark.parametrize(
    "vector", VECTORS["consistency"], ids=lambda v: f"{v['size1']}-{v['size2']}"
)
def test_published_consistency_proofs(vector: dict[str, Any]) -> None:
    size1, size2, published = vector["size1"], vector["size2"], vector["proof"]
    generated = consistency_proof(size1, size2, list_subtree_hash(CT_HASHES[:size2]))
    assert _hex(generated) == published
    proof = [bytes.fromhex(h) for h in published]
    root1, root2 = CT_ROOTS[size1], CT_ROOTS[size2]
    assert verify_consistency(size1, size2, root1, root2, proof)
    if proof:
        for probe in consistency_probes(size1, size2, root1, root2, proof):
            assert not verify_consistency(
                probe.size1, probe.size2, probe.root1, probe.root2, probe.proof
            ), probe.desc


def test_published_happy_path_json_files() -> None:
    inc = VECTORS["happy_path_json"]["inclusion"]
    b64 = base64.b64decode
    assert verify_inclusion(
        b64(inc["leafHash"]),
        inc["leafIdx"],
        inc["treeSize"],
        [b64(p) for p in inc["proof"]],
        b64(inc["root"]),
    )
    con = VECTORS["happy_path_json"]["consistency"]
    assert verify_consistency(
        con["size1"],
        con["size2"],
        b64(con["root1"]),
        b64(con["root2"]),
        [b64(p) for p in con["proof"]],
    )


# --- every size up to 64, against the reference ----------------------------------


@cache
def _root(n: int) -> bytes:
    return ref.mth(INPUTS[:n])


def test_F13_every_inclusion_proof_up_to_64_matches_the_rfc_and_every_corruption_fails() -> None:
    compact = CompactRange()
    for size in range(1, 65):
        compact.append(HASHES[size - 1])
        root = _root(size)
        assert compact.root() == root == root_from_leaf_hashes(HASHES[:size])
        subtree = list_subtree_hash(HASHES[:size])
        for index in range(size):
            proof = inclusion_proof(index, size, subtree)
            assert proof == ref.path(index, INPUTS[:size]), (index, size)
            assert verify_inclusion(HASHES[index], index, size, proof, root)
            for probe in inclusion_probes(HASHES[index], index, size, proof, root):
                assert not verify_inclusion(
                    probe.leaf, probe.index, probe.size, probe.proof, probe.root
                ), (index, size, probe.desc)


def test_F13_every_consistency_proof_up_to_64_matches_the_rfc_and_every_corruption_fails() -> None:
    for size2 in range(1, 65):
        subtree = list_subtree_hash(HASHES[:size2])
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(size1, size2, subtree)
            assert proof == ref.proof(size1, INPUTS[:size2]), (size1, size2)
            assert verify_consistency(size1, size2, _root(size1), _root(size2), proof)
            if size1 == size2:
                assert proof == []
                assert not verify_consistency(size1, size2, _root(size1), _root(size2), [SOME])
                continue
            for probe in consistency_probes(size1, size2, _root(size1), _root(size2), proof):
                assert not verify_consistency(
                    probe.size1, probe.size2, probe.root1, probe.root2, probe.proof
                ), (size1, size2, probe.desc)


SOME = leaf_hash(b"some")


def test_trivial_and_malformed_cases() -> None:
    r3 = _root(3)
    # An empty tree is a prefix of every tree, with an empty proof and the empty root.
    assert verify_consistency(0, 3, EMPTY_ROOT, r3, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 3, _root(1), r3, [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, r3, [SOME])
    # Equal sizes: equal roots and nothing else.
    assert not verify_consistency(3, 3, r3, SOME, [])
    assert not verify_consistency(3, 3, b"x", b"x", [])  # malformed hashes never verify
    assert not verify_consistency(3, 2, r3, _root(2), [])
    assert not verify_consistency(-1, 3, EMPTY_ROOT, r3, [])
    # Inclusion: nothing is in an empty tree; hashes must be 32 bytes.
    assert not verify_inclusion(HASHES[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(b"x", 0, 1, [], b"x")
    assert verify_inclusion(HASHES[0], 0, 1, [], HASHES[0])
    with pytest.raises(ValueError, match="order"):
        consistency_proof(3, 2, list_subtree_hash(HASHES[:3]))
    with pytest.raises(ValueError, match="range"):
        inclusion_proof(3, 3, list_subtree_hash(HASHES[:3]))
    with pytest.raises(ValueError, match="range"):
        inclusion_proof(-1, 3, list_subtree_hash(HASHES[:3]))


# --- large random sizes -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(size=st.integers(min_value=65, max_value=3000), data=st.data())
def test_F13_large_random_trees(size: int, data: st.DataObject) -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    compact = CompactRange()
    for h in hashes:
        compact.append(h)
    root = compact.root()
    assert root == root_from_leaf_hashes(hashes)
    subtree = list_subtree_hash(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, subtree)
    assert verify_inclusion(hashes[index], index, size, proof, root)
    for probe in inclusion_probes(hashes[index], index, size, proof, root):
        assert not verify_inclusion(probe.leaf, probe.index, probe.size, probe.proof, probe.root)
    old = data.draw(st.integers(min_value=1, max_value=size - 1))
    old_root = root_from_leaf_hashes(hashes[:old])
    cproof = consistency_proof(old, size, subtree)
    assert verify_consistency(old, size, old_root, root, cproof)
    assert len(cproof) <= 2 * size.bit_length()
    for cprobe in consistency_probes(old, size, old_root, root, cproof):
        assert not verify_consistency(
            cprobe.size1, cprobe.size2, cprobe.root1, cprobe.root2, cprobe.proof
        )


@cache
def _uniform(n: int) -> bytes:
    """MTH of n copies of one leaf: it depends only on n, so trees of 2**62 leaves
    can be proved and verified without materializing them."""
    if n == 1:
        return SOME
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_uniform(k), _uniform(n - k))


def _uniform_subtree(start: int, end: int) -> bytes:
    return _uniform(end - start)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=2, max_value=2**62), data=st.data())
def test_huge_trees_prove_and_verify_in_log_n(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = inclusion_proof(index, size, _uniform_subtree)
    assert len(proof) <= size.bit_length()
    assert verify_inclusion(SOME, index, size, proof, _uniform(size))
    assert not verify_inclusion(SOME, index, size, proof[:-1], _uniform(size))
    assert not verify_inclusion(SOME, index, size, [*proof, SOME], _uniform(size))
    assert not verify_inclusion(SOME, size, size, proof, _uniform(size))
    old = data.draw(st.integers(min_value=1, max_value=size - 1))
    cproof = consistency_proof(old, size, _uniform_subtree)
    assert len(cproof) <= 2 * size.bit_length()
    assert verify_consistency(old, size, _uniform(old), _uniform(size), cproof)
    assert not verify_consistency(old, size, _uniform(old), _uniform(size), cproof[:-1])
    assert not verify_consistency(old, size, _uniform(size), _uniform(old), cproof)
    compact = CompactRange()
    # The right edge of the tree has one hash per set bit of the size.
    for _ in range(min(size, 300)):
        compact.append(SOME)
    assert len(compact.hashes) == bin(compact.size).count("1")
    assert compact.root() == _uniform(compact.size)
