"""RFC 6962 Merkle tree primitives: hashes, roots, inclusion and consistency proofs.

The access log is a Merkle tree in the sense of RFC 6962 §2.1 (the same tree Certificate
Transparency and Go's checksum database use), so an auditor can check its proofs with any
off-the-shelf implementation, not only this one:

- a leaf hash is ``SHA-256(0x00 || entry)`` and an interior node ``SHA-256(0x01 || l || r)``:
  the prefix bytes keep a leaf from ever being passed off as a node (second pre-image);
- the tree of ``n`` leaves splits at the largest power of two below ``n``, so the first ``k``
  leaves of a tree always form the same subtrees however many leaves follow. That is what
  makes a signed root a commitment to the whole history up to it.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) to the letter;
every malformed input (wrong index or size, a flipped bit, a missing or extra proof element)
yields ``False``, never an exception, because a verifier's answer must be yes or no.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 6962: the root of the empty tree is the hash of the empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class CompactTree:
    """A tree's root computed while its leaves stream past, in O(log n) memory.

    Holds the roots of the perfect subtrees that cover the leaves seen so far, largest first
    (one per set bit of the size). Appending merges equal-sized neighbours like a binary
    counter carries; the root folds them right to left, which is exactly RFC 6962's MTH
    because the largest-power-of-two split puts every perfect subtree on the left.
    """

    __slots__ = ("_peaks", "size")

    def __init__(self) -> None:
        self._peaks: list[bytes] = []
        self.size = 0

    def append(self, hash_: bytes) -> None:
        """Add the next leaf hash (not the leaf data: callers hash with ``leaf_hash``)."""
        self.size += 1
        carries, peaks = self.size, self._peaks
        while not carries & 1:  # one merge per trailing zero bit of the new size
            hash_ = node_hash(peaks.pop(), hash_)
            carries >>= 1
        peaks.append(hash_)

    def extend(self, hashes: Iterable[bytes]) -> None:
        for hash_ in hashes:
            self.append(hash_)

    def root(self) -> bytes:
        """The root of the leaves appended so far; the tree stays usable for more."""
        if not self._peaks:
            return EMPTY_ROOT
        root = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            root = node_hash(peak, root)
        return root


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash (MTH) of a sequence of leaf hashes, for any size incl. 0.

    Streaming: ``hashes`` may be a generator over millions of database rows; only
    O(log n) hashes are held at once. (The loop repeats ``CompactTree.append`` inline because
    attribute look-ups dominate at a million leaves.)
    """
    sha256 = hashlib.sha256
    peaks: list[bytes] = []
    pop, push = peaks.pop, peaks.append
    size = 0
    for hash_ in hashes:
        size += 1
        carries = size
        while not carries & 1:
            hash_ = sha256(_NODE_PREFIX + pop() + hash_).digest()
            carries >>= 1
        push(hash_)
    if not peaks:
        return EMPTY_ROOT
    root = peaks[-1]
    for peak in reversed(peaks[:-1]):
        root = node_hash(peak, root)
    return root


def _split_point(n: int) -> int:
    """RFC 6962's k: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    return root_from_leaf_hashes(hashes[i] for i in range(start, end))


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for position, hash_ in enumerate(hashes):
        if not isinstance(hash_, bytes | bytearray) or len(hash_) != HASH_SIZE:
            raise ValueError(f"leaf hash {position} is not {HASH_SIZE} bytes")


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path PATH(index, D[n]) for the tree of ``leaf_hashes``.

    Bottom-up order (the sibling nearest the leaf first), as RFC 9162 verifiers expect.
    O(n) hashing: without stored interior nodes every sibling subtree is recomputed once.
    """
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes(leaf_hashes)
    top_down: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split_point(end - start)
        if index < middle:
            top_down.append(_range_root(leaf_hashes, middle, end))
            end = middle
        else:
            top_down.append(_range_root(leaf_hashes, start, middle))
            start = middle
    return top_down[::-1]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(old_size, D[n]): the tree of the first ``old_size`` leaves is
    a prefix of the tree of ``leaf_hashes``. Empty when ``old_size`` is 0 or ``n``."""
    size = len(leaf_hashes)
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} is outside 0..{size}")
    _check_hashes(leaf_hashes)
    if old_size in (0, size):
        return []
    top_down: list[bytes] = []
    start, end, wanted = 0, size, old_size  # SUBPROOF(wanted, D[start:end], whole_old_tree)
    whole_old_tree = True
    while end - start != wanted:
        middle_offset = _split_point(end - start)
        if wanted <= middle_offset:
            top_down.append(_range_root(leaf_hashes, start + middle_offset, end))
            end = start + middle_offset
        else:
            top_down.append(_range_root(leaf_hashes, start, start + middle_offset))
            start += middle_offset
            wanted -= middle_offset
            whole_old_tree = False
    if not whole_old_tree:
        # The old tree's root is not one node of the new tree: the verifier needs this
        # subtree to rebuild both roots. (When it is one node, the verifier has it already.)
        top_down.append(_range_root(leaf_hashes, start, end))
    return top_down[::-1]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf ``index`` of the tree ``(size, root)``
    has hash ``leaf_hash``?"""
    if not (_is_size(index) and _is_size(size) and index < size):
        return False
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    fn, sn, computed = index, size - 1, bytes(leaf_hash)
    for sibling in proof:
        if sn == 0:
            return False  # more proof than tree: an extra element
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            while not fn & 1 and fn != 0:  # skip levels where we are a lone right edge
                fn >>= 1
                sn >>= 1
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and computed == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: does ``proof`` show the tree ``(old_size, old_root)`` is a prefix
    of the tree ``(new_size, new_root)``?

    As in transparency-dev/merkle: equal sizes need equal roots and an empty proof; the
    empty tree is a prefix of every tree (empty proof); anything else needs a proof.
    """
    if not (_is_size(old_size) and _is_size(new_size) and old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old tree is one complete subtree of the new
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_computed = new_computed = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old_computed = node_hash(node, old_computed)
            new_computed = node_hash(node, new_computed)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_computed = node_hash(new_computed, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and old_computed == old_root and new_computed == new_root
