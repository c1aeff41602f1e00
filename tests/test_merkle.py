"""RFC 6962 Merkle primitives: published test vectors, an RFC-text reference, and the
corruption probes every verifier must reject.

The vectors are those of transparency-dev/merkle (testonly/constants.go for leaves, node
and root hashes; proof/verify_test.go for inclusion and consistency proofs; the node-id
lists of proof/proof_test.go for proof shapes), which Certificate Transparency's Go code
shares. They are copied as data, never derived from the code under test.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from custos.access.merkle import (
    EMPTY_ROOT,
    CompactTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
# NodeHashes(): [level][index] over the 8-leaf tree.
NODES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
# RootHashes(): indexed by tree size, from the empty tree.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# verify_test.go inclusionProofs (its leaf numbers are 1-based; these indexes are 0-based).
INCLUSION_VECTORS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# verify_test.go consistencyProofs.
CONSISTENCY_VECTORS = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip

LEAVES = [leaf_hash(data) for data in LEAF_INPUTS]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


# -- proof shapes from proof_test.go's node ids, in the tree of its diagram -----------------
#          hash                 a..f, j: leaves 0..6; leaf 7 is NODES[0][7]
#        k      l               g, h, i: level 1 nodes 0..2
#      g   h   i   [ ]          k, l:    level 2 nodes 0..1 (l of the 8-leaf tree)
#     a b c d e f j
a, b, c, d, e, f, j, leaf7 = NODES[0]
g, hh, i = NODES[1][:3]
k, l8 = NODES[2]
l7 = node_hash(i, j)  # l of the 7-leaf tree: proof_test's "rehash" of j and i

INCLUSION_SHAPES = [
    (1, 0, []),
    (2, 0, [b]),
    (2, 1, [a]),
    (3, 1, [a, c]),
    (7, 0, [b, hh, l7]),
    (7, 1, [a, hh, l7]),
    (7, 2, [d, g, l7]),
    (7, 3, [c, g, l7]),
    (7, 4, [f, j, k]),
    (7, 5, [e, j, k]),
    (7, 6, [i, k]),
    (4, 2, [d, g]),
    (5, 3, [c, g, e]),
    (6, 3, [c, g, i]),
    (6, 4, [f, k]),
]
CONSISTENCY_SHAPES = [
    (1, 2, [b]),
    (1, 4, [b, hh]),
    (1, 6, [b, hh, i]),
    (2, 3, [c]),
    (2, 8, [hh, l8]),
    (3, 7, [c, d, g, l7]),
    (4, 7, [l7]),
    (5, 7, [e, f, j, k]),
    (6, 7, [i, j, k]),
    (7, 8, [j, leaf7, i, k]),
    (2, 4, [hh]),
    (3, 5, [c, d, g, e]),
    (3, 6, [c, d, g, i]),
    (4, 6, [i]),
    (1, 7, [b, hh, l7]),
]


# -- a reference straight from the RFC 6962 text, to test the iterative code against ---------
def _k(n: int) -> int:
    power = 1
    while power * 2 < n:
        power *= 2
    return power


def ref_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    split = _k(len(hashes))
    return node_hash(ref_root(hashes[:split]), ref_root(hashes[split:]))


def ref_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    split = _k(len(hashes))
    if m < split:
        return ref_path(m, hashes[:split]) + [ref_root(hashes[split:])]
    return ref_path(m - split, hashes[split:]) + [ref_root(hashes[:split])]


def ref_subproof(m: int, hashes: list[bytes], whole: bool) -> list[bytes]:
    if m == len(hashes):
        return [] if whole else [ref_root(hashes)]
    split = _k(len(hashes))
    if m <= split:
        return ref_subproof(m, hashes[:split], whole) + [ref_root(hashes[split:])]
    return ref_subproof(m - split, hashes[split:], False) + [ref_root(hashes[:split])]


def _random_leaves(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(rng.randint(0, 40))) for _ in range(count)]


# -- corruption probes (as transparency-dev/merkle's corruptInclusionProof and
#    corruptConsistencyProof): every one must be rejected -------------------------------------
def _flip(proof: list[bytes], position: int, mask: int) -> list[bytes]:
    flipped = list(proof)
    flipped[position] = bytes([flipped[position][0] ^ mask]) + flipped[position][1:]
    return flipped


def inclusion_probes(index, size, proof, root, leaf):
    probes = {
        "index - 1": (leaf, index - 1, size, proof, root),
        "index + 1": (leaf, index + 1, size, proof, root),
        "index ^ 2": (leaf, index ^ 2, size, proof, root),
        "size * 2": (leaf, index, size * 2, proof, root),
        "size / 2": (leaf, index, size // 2, proof, root),
        "wrong leaf": (b"WrongLeaf", index, size, proof, root),
        "wrong leaf, right length": (leaf_hash(b"wrong"), index, size, proof, root),
        "empty root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, SOME_HASH),
        "trailing garbage": (leaf, index, size, [*proof, b""], root),
        "trailing root": (leaf, index, size, [*proof, root], root),
        "preceding garbage": (leaf, index, size, [b"", *proof], root),
        "preceding root": (leaf, index, size, [root, *proof], root),
    }
    for position in range(len(proof)):
        probes[f"proof[{position}] bit flipped"] = (
            leaf,
            index,
            size,
            _flip(proof, position, 8),
            root,
        )
    if proof:
        probes["truncated proof"] = (leaf, index, size, proof[:-1], root)
    if len(proof) > 1:
        probes["inserted component"] = (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)
    return probes


def consistency_probes(size1, size2, root1, root2, proof):
    probes = {
        "size1 - 1": (size1 - 1, size2, root1, root2, proof),
        "size1 + 1": (size1 + 1, size2, root1, root2, proof),
        "size1 ^ 2": (size1 ^ 2, size2, root1, root2, proof),
        "size2 * 2": (size1, size2 * 2, root1, root2, proof),
        "size2 / 2": (size1, size2 // 2, root1, root2, proof),
        "wrong root1": (size1, size2, b"WrongRoot", root2, proof),
        "wrong root2": (size1, size2, root1, b"WrongRoot", proof),
        "random root1": (size1, size2, SOME_HASH, root2, proof),
        "random root2": (size1, size2, root1, SOME_HASH, proof),
        "swapped roots": (size1, size2, root2, root1, proof),
        "empty proof": (size1, size2, root1, root2, []),
        "trailing garbage": (size1, size2, root1, root2, [*proof, b""]),
        "trailing root1": (size1, size2, root1, root2, [*proof, root1]),
        "trailing root2": (size1, size2, root1, root2, [*proof, root2]),
        "preceding garbage": (size1, size2, root1, root2, [b"", *proof]),
        "preceding root1": (size1, size2, root1, root2, [root1, *proof]),
        "preceding root2": (size1, size2, root1, root2, [root2, *proof]),
        "preceding proof[0]": (size1, size2, root1, root2, [proof[0], *proof]),
        "truncated proof": (size1, size2, root1, root2, proof[:-1]),
    }
    for position in range(len(proof)):
        probes[f"proof[{position}] bit flipped"] = (
            size1,
            size2,
            root1,
            root2,
            _flip(proof, position, 16),
        )
    return probes


def _accepted_inclusion_probes(index, size, proof, root, leaf) -> list[str]:
    return [
        name
        for name, args in inclusion_probes(index, size, proof, root, leaf).items()
        if verify_inclusion(*args)
    ]


def _accepted_consistency_probes(size1, size2, root1, root2, proof) -> list[str]:
    return [
        name
        for name, args in consistency_probes(size1, size2, root1, root2, proof).items()
        if verify_consistency(*args)
    ]


# -- hashes and roots ---------------------------------------------------------------------------


def test_leaf_and_node_hashes_match_the_published_tree():
    assert LEAVES == NODES[0]
    for level in range(1, len(NODES)):
        for position, node in enumerate(NODES[level]):
            below = NODES[level - 1]
            assert node_hash(below[2 * position], below[2 * position + 1]) == node


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_root_of_every_prefix_matches_the_published_root(size):
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]
    tree = CompactTree()
    tree.extend(LEAVES[:size])
    assert (tree.size, tree.root()) == (size, ROOTS[size])


def test_empty_tree_root_is_the_hash_of_the_empty_string():
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_root_streams_from_a_generator_and_the_compact_tree_stays_usable():
    leaves = _random_leaves(1000, seed=1)
    tree = CompactTree()
    for count, hash_ in enumerate(leaves, start=1):
        tree.append(hash_)
        if count in (1, 2, 3, 255, 256, 257, 999):
            assert tree.root() == ref_root(leaves[:count])
    assert root_from_leaf_hashes(hash_ for hash_ in leaves) == tree.root()


# -- the published proofs -----------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_published_inclusion_proofs_are_produced_and_verify(index, size, proof):
    expected = [h(node) for node in proof]
    assert inclusion_proof(LEAVES[:size], index) == expected
    assert verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])
    assert _accepted_inclusion_probes(index, size, expected, ROOTS[size], LEAVES[index]) == []


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_VECTORS)
def test_published_consistency_proofs_are_produced_and_verify(size1, size2, proof):
    expected = [h(node) for node in proof]
    assert consistency_proof(LEAVES[:size2], size1) == expected
    assert verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], expected)
    assert _accepted_consistency_probes(size1, size2, ROOTS[size1], ROOTS[size2], expected) == []


@pytest.mark.parametrize(("size", "index", "proof"), INCLUSION_SHAPES)
def test_inclusion_proofs_have_the_reference_shape(size, index, proof):
    assert inclusion_proof(LEAVES[:size], index) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_SHAPES)
def test_consistency_proofs_have_the_reference_shape(size1, size2, proof):
    assert consistency_proof(LEAVES[:size2], size1) == proof
    assert verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], proof)


def test_single_leaf_tree_root_is_its_leaf_hash_with_an_empty_proof():
    hash_ = leaf_hash(b"data")
    assert verify_inclusion(hash_, 0, 1, [], hash_)
    assert not verify_inclusion(hash_, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], hash_)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_in_impossible_positions_is_rejected(index, size):
    assert not verify_inclusion(SOME_HASH, index, size, [], b"")
    assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


@pytest.mark.parametrize(
    ("size1", "size2", "root1", "root2", "proof", "valid"),
    [
        (0, 0, SOME_HASH, SOME_HASH, [], True),
        (0, 1, SOME_HASH, EMPTY_ROOT, [], True),  # the empty tree precedes every tree
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 0, SOME_HASH, EMPTY_ROOT, [], False),  # same size, different roots
        (1, 1, EMPTY_ROOT, SOME_HASH, [], False),
        (1, 0, SOME_HASH, SOME_HASH, [], False),  # time travel to the past
        (2, 1, SOME_HASH, SOME_HASH, [], False),
        (1, 2, SOME_HASH, EMPTY_ROOT, [], False),  # a proof is needed
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # but not here
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
    ],
)
def test_consistency_edge_cases(size1, size2, root1, root2, proof, valid):
    assert verify_consistency(size1, size2, root1, root2, proof) is valid


def test_proof_requests_outside_the_tree_are_refused():
    with pytest.raises(ValueError, match="outside a tree of size 3"):
        inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ValueError, match="outside 0..3"):
        consistency_proof(LEAVES[:3], 4)
    with pytest.raises(ValueError, match="not 32 bytes"):
        inclusion_proof([b"short", *LEAVES[1:3]], 1)


def test_non_integer_sizes_and_indexes_are_rejected_not_crashed():
    proof = inclusion_proof(LEAVES, 3)
    assert not verify_inclusion(LEAVES[3], 3.0, 8, proof, ROOTS[8])
    assert not verify_inclusion(LEAVES[3], True, 8, proof, ROOTS[8])
    assert not verify_consistency(4, "8", ROOTS[4], ROOTS[8], consistency_proof(LEAVES, 4))


# -- properties over random trees -------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 130))
def test_iterative_code_agrees_with_the_rfc_text_for_small_trees(size):
    leaves = _random_leaves(size, seed=size)
    root = ref_root(leaves)
    assert root_from_leaf_hashes(leaves) == root
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert proof == ref_path(index, leaves)
        assert verify_inclusion(leaves[index], index, size, proof, root)
    for old in range(1, size + 1):
        proof = consistency_proof(leaves, old)
        assert proof == ref_subproof(old, leaves, True)
        assert verify_consistency(old, size, ref_root(leaves[:old]), root, proof)


def _random_cases(seed: int, count: int, max_size: int = 300):
    rng = random.Random(seed)
    for _ in range(count):
        size = rng.randint(2, max_size)
        yield size, _random_leaves(size, seed=rng.randrange(1 << 30)), rng


@pytest.mark.parametrize("seed", range(12))
def test_random_inclusion_proofs_verify_and_every_corruption_is_rejected(seed):
    for size, leaves, rng in _random_cases(seed, count=4):
        root = root_from_leaf_hashes(leaves)
        for index in {0, size - 1, size // 2, *rng.sample(range(size), min(6, size))}:
            proof = inclusion_proof(leaves, index)
            assert verify_inclusion(leaves[index], index, size, proof, root), (size, index)
            accepted = _accepted_inclusion_probes(index, size, proof, root, leaves[index])
            assert accepted == [], (size, index, accepted)


@pytest.mark.parametrize("seed", range(12))
def test_random_consistency_proofs_verify_and_every_corruption_is_rejected(seed):
    for size, leaves, rng in _random_cases(seed, count=4):
        root = root_from_leaf_hashes(leaves)
        for old in {1, size - 1, size // 2, *rng.sample(range(1, size), min(6, size - 1))}:
            old_root = root_from_leaf_hashes(leaves[:old])
            proof = consistency_proof(leaves, old)
            assert verify_consistency(old, size, old_root, root, proof), (old, size)
            accepted = _accepted_consistency_probes(old, size, old_root, root, proof)
            assert accepted == [], (old, size, accepted)


def test_a_rewritten_history_is_not_consistent_with_the_old_root():
    leaves = _random_leaves(100, seed=5)
    old_root = root_from_leaf_hashes(leaves[:60])
    rewritten = list(leaves)
    rewritten[17] = leaf_hash(b"rewritten")
    proof = consistency_proof(rewritten, 60)
    assert not verify_consistency(60, 100, old_root, root_from_leaf_hashes(rewritten), proof)


def test_a_million_leaves_hash_in_seconds():
    import time

    leaves = [hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(1_000_000)]
    started = time.perf_counter()
    root_from_leaf_hashes(iter(leaves))
    # ~0.5 s here; the bound only catches an accidental O(n log n) or per-leaf allocation.
    assert time.perf_counter() - started < 10
