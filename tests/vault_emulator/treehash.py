"""The emulator's own SHA256 tree hash, written apart from aglacier's on purpose.

The emulator is the independent check of aglacier's tree-hash code, so it must not share it:
a bug there must not be mirrored here. Tree hash: SHA256 of each 1 MiB leaf, then SHA256 of
each pair of concatenated digests, level by level; an odd last digest moves up unchanged.
Empty input hashes to SHA256 of the empty string.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

MIB = 1024 * 1024


def combine(digests: Sequence[bytes]) -> bytes:
    """Reduce sub-tree digests (left to right) to their root digest."""
    if not digests:
        return hashlib.sha256(b"").digest()
    level = list(digests)
    while len(level) > 1:
        paired = [
            hashlib.sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class TreeHasher:
    """Incremental tree hash: feed bytes in any slices, read the root at the end."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._pending = bytearray()

    def update(self, data: bytes) -> None:
        """Add the next bytes of the input."""
        view = memoryview(data)
        if self._pending:
            take = min(MIB - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) == MIB:
                self._leaves.append(hashlib.sha256(self._pending).digest())
                self._pending.clear()
        while len(view) >= MIB:
            self._leaves.append(hashlib.sha256(view[:MIB]).digest())
            view = view[MIB:]
        self._pending += view

    def digest(self) -> bytes:
        """Root digest of everything fed so far."""
        leaves = list(self._leaves)
        if self._pending or not leaves:
            leaves.append(hashlib.sha256(self._pending).digest())
        return combine(leaves)

    def hexdigest(self) -> str:
        """Root digest as lowercase hex, the form Glacier headers use."""
        return self.digest().hex()


def tree_hash(data: bytes) -> str:
    """Hex tree hash of a byte string."""
    hasher = TreeHasher()
    hasher.update(data)
    return hasher.hexdigest()


def combine_hex(hex_digests: Iterable[str]) -> str:
    """Hex root of hex sub-tree digests (e.g. the tree hashes of equal 2^n MiB parts)."""
    return combine([bytes.fromhex(h) for h in hex_digests]).hex()


def file_range_tree_hash(path: Path, start: int, length: int) -> str:
    """Hex tree hash of ``length`` bytes of a file from ``start``; reads 1 MiB at a time."""
    hasher = TreeHasher()
    fd = os.open(path, os.O_RDONLY)
    try:
        offset, end = start, start + length
        while offset < end:
            chunk = os.pread(fd, min(MIB, end - offset), offset)
            if not chunk:
                raise OSError(f"{path} is shorter than {end} bytes")
            hasher.update(chunk)
            offset += len(chunk)
    finally:
        os.close(fd)
    return hasher.hexdigest()


def is_tree_hash_aligned(start: int, end: int, total: int) -> bool:
    """Whether bytes ``start..end`` (inclusive) are one node of the tree over ``total`` bytes.

    That is AWS's definition of a tree-hash-aligned range; such a range starts at a multiple
    of 2^n MiB and is 2^n MiB long, or is cut short by the end of the data.
    """
    if not 0 <= start <= end < total:
        return False
    block = MIB
    while True:
        if start % block:
            return False
        if end + 1 == min(start + block, total):
            return True
        if start + block >= total:
            return False
        block *= 2
