"""RFC 9162 Merkle trees: published RFC 6962 vectors, every proof for every size up to
64 (and every tampering of it fails), and property tests for large random sizes."""

from __future__ import annotations

import hashlib

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
from hypothesis import given
from hypothesis import strategies as st

# The Certificate Transparency reference leaves and tree heads (RFC 6962 test data,
# reproduced by several independent implementations).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_published_roots_for_every_size() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    compact = CompactRange()
    for n in range(len(CT_LEAVES) + 1):
        assert root_from_leaf_hashes(hashes[:n]).hex() == CT_ROOTS[n]
        assert compact.root().hex() == CT_ROOTS[n]
        if n < len(hashes):
            compact.append(hashes[n])


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    generated = inclusion_proof(index, size, list_subtree_hash(hashes))
    assert [p.hex() for p in generated] == proof
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(hashes[index], index, size, generated, root)


def _mutations(proof: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 1
        out.append([*proof[:i], bytes(flipped), *proof[i + 1 :]])
        out.append(proof[:i] + proof[i + 1 :])  # a node missing
    out.append([*proof, hashlib.sha256(b"extra").digest()])  # a node too many
    return out


def test_every_inclusion_proof_up_to_64_verifies_and_every_tampering_fails() -> None:
    all_leaves = _leaves(64)
    for size in range(1, 65):
        hashes = all_leaves[:size]
        root = root_from_leaf_hashes(hashes)
        subtree = list_subtree_hash(hashes)
        for index in range(size):
            proof = inclusion_proof(index, size, subtree)
            assert verify_inclusion(hashes[index], index, size, proof, root)
            assert not verify_inclusion(hashes[index], index, size, proof, node_hash(root, root))
            other = hashes[(index + 1) % size]
            if size > 1:
                assert not verify_inclusion(other, index, size, proof, root)
                assert not verify_inclusion(hashes[index], (index + 1) % size, size, proof, root)
            assert not verify_inclusion(hashes[index], size, size, proof, root)
            for bad in _mutations(proof):
                assert not verify_inclusion(hashes[index], index, size, bad, root)


def test_every_consistency_proof_up_to_64_verifies_and_every_tampering_fails() -> None:
    all_leaves = _leaves(64)
    roots = [root_from_leaf_hashes(all_leaves[:n]) for n in range(65)]
    for new in range(1, 65):
        subtree = list_subtree_hash(all_leaves[:new])
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, subtree)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            if old < new:
                assert not verify_consistency(old, new, roots[old - 1], roots[new], proof)
                assert not verify_consistency(old, new, roots[old], roots[new - 1], proof)
                assert not verify_consistency(old, new, roots[old], roots[new], [])
                for bad in _mutations(proof):
                    assert not verify_consistency(old, new, roots[old], roots[new], bad)


def test_consistency_edge_cases() -> None:
    roots = [root_from_leaf_hashes(_leaves(n)) for n in range(4)]
    assert verify_consistency(0, 3, EMPTY_ROOT, roots[3], [])
    assert not verify_consistency(0, 3, roots[1], roots[3], [])
    assert not verify_consistency(3, 2, roots[3], roots[2], [])
    with pytest.raises(ValueError, match="order"):
        consistency_proof(3, 2, list_subtree_hash(_leaves(3)))
    with pytest.raises(ValueError, match="range"):
        inclusion_proof(3, 3, list_subtree_hash(_leaves(3)))


@given(size=st.integers(min_value=1, max_value=3000), data=st.data())
def test_large_random_trees(size: int, data: st.DataObject) -> None:
    hashes = _leaves(size)
    compact = CompactRange()
    for h in hashes:
        compact.append(h)
    root = compact.root()
    subtree = list_subtree_hash(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert verify_inclusion(hashes[index], index, size, inclusion_proof(index, size, subtree), root)
    old = data.draw(st.integers(min_value=1, max_value=size))
    old_root = root_from_leaf_hashes(hashes[:old])
    proof = consistency_proof(old, size, subtree)
    assert verify_consistency(old, size, old_root, root, proof)
    assert len(proof) <= 2 * size.bit_length()
