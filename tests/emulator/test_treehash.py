"""The emulator's own tree hash against botocore's, at the sizes where bugs hide."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vault_emulator import MIB, TreeHasher, combine_hex, is_tree_hash_aligned, tree_hash
from tests.vault_emulator.treehash import file_range_tree_hash

from .helpers import random_bytes, reference_tree_hash

BOUNDARY_SIZES = [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB, 3 * MIB, 3 * MIB + 7, 4 * MIB, 5 * MIB - 1]


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_tree_hash_matches_botocore(size: int) -> None:
    data = random_bytes(size)
    assert tree_hash(data) == reference_tree_hash(data)


def test_empty_input_is_sha256_of_nothing() -> None:
    assert tree_hash(b"") == hashlib.sha256(b"").hexdigest()


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 3 * MIB + 10), cuts=st.lists(st.integers(0, 3 * MIB + 10)))
def test_incremental_hash_ignores_how_input_is_sliced(size: int, cuts: list[int]) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    hasher = TreeHasher()
    previous = 0
    for cut in [*sorted(c for c in cuts if c <= size), size]:
        hasher.update(data[previous:cut])
        previous = cut
    assert hasher.hexdigest() == reference_tree_hash(data)


@pytest.mark.parametrize(("part_mib", "size"), [(1, 5 * MIB + 3), (2, 7 * MIB), (4, 9 * MIB + 1)])
def test_part_hashes_combine_to_the_whole(part_mib: int, size: int) -> None:
    data = random_bytes(size)
    part = part_mib * MIB
    part_hashes = [reference_tree_hash(data[i : i + part]) for i in range(0, size, part)]
    assert combine_hex(part_hashes) == reference_tree_hash(data)


def test_file_range_hash_reads_the_right_bytes(tmp_path: Path) -> None:
    data = random_bytes(4 * MIB + 11)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_range_tree_hash(path, MIB, 2 * MIB) == reference_tree_hash(data[MIB : 3 * MIB])
    assert file_range_tree_hash(path, 0, len(data)) == reference_tree_hash(data)
    with pytest.raises(OSError, match="shorter"):
        file_range_tree_hash(path, 4 * MIB, MIB)


@pytest.mark.parametrize(
    ("start", "end", "total", "aligned"),
    [
        (0, 8 * MIB - 1, 8 * MIB, True),  # the whole archive
        (0, MIB - 1, 8 * MIB, True),  # a leaf
        (2 * MIB, 4 * MIB - 1, 8 * MIB, True),  # a 2 MiB node
        (4 * MIB, 8 * MIB - 1, 8 * MIB, True),  # a 4 MiB node
        (MIB, 3 * MIB - 1, 8 * MIB, False),  # 2 MiB long but starts off its grid
        (0, 3 * MIB - 1, 8 * MIB, False),  # 3 MiB is no power of two
        (100, MIB - 1, 8 * MIB, False),  # not MiB aligned
        (2 * MIB, 3 * MIB + 99, 3 * MIB + 100, True),  # node cut short by the archive end
        (0, 99, 100, True),  # a small archive is one leaf
        (MIB, MIB + 99, MIB + 100, True),  # the short last leaf
        (0, MIB + 99, MIB + 100, True),  # the root of a two-leaf tree
        (0, MIB - 1, MIB - 1, False),  # past the end
    ],
)
def test_tree_hash_alignment(start: int, end: int, total: int, aligned: bool) -> None:
    assert is_tree_hash_aligned(start, end, total) is aligned


def test_aligned_ranges_are_nodes_of_the_whole_tree() -> None:
    # The definition AWS gives: the range's own tree hash equals a node of the archive tree,
    # i.e. hashing it as a unit and combining with its siblings yields the root.
    data = random_bytes(6 * MIB + 5)
    nodes = [reference_tree_hash(data[i : i + 2 * MIB]) for i in range(0, len(data), 2 * MIB)]
    assert combine_hex(nodes) == reference_tree_hash(data)
    assert all(
        is_tree_hash_aligned(i, min(i + 2 * MIB, len(data)) - 1, len(data))
        for i in range(0, len(data), 2 * MIB)
    )
