"""Tree hashes and S3 checksums against independent implementations.

The oracle for tree hashes is botocore's ``calculate_tree_hash``; S3 composite
checksums are recomputed here with hashlib. Random data (never repeated
blocks) so that a leaf taken in the wrong order changes the result.
"""

from __future__ import annotations

import array
import base64
import hashlib
import io
import itertools
import os
import random
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.utils import calculate_tree_hash
from hypothesis import given, settings
from hypothesis import strategies as st

from aglacier import treehash
from aglacier.errors import SourceError
from aglacier.treehash import (
    EMPTY_SHA256,
    PartHasher,
    S3CompositeHasher,
    TreeHasher,
    combine,
    composite_checksum,
    file_checksums,
    file_tree_hash,
    from_hex,
    s3_composite_checksum,
    stream_checksums,
    stream_tree_hash,
    to_base64,
    to_hex,
    tree_hash,
)

MiB = 1 << 20
BOUNDARIES = [0, 1, *(k * MiB + d for k in (1, 2, 3, 4) for d in (-1, 0, 1))]
SIZES = st.one_of(
    st.sampled_from(BOUNDARIES),
    st.integers(0, 3 * MiB),
    st.integers(9 * MiB, 17 * MiB),
)
FAST = settings(max_examples=15, deadline=None)


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 7919 + seed).randbytes(size)


def botocore_tree_hash(data: bytes) -> bytes:
    return bytes.fromhex(str(calculate_tree_hash(io.BytesIO(data))))


def s3_reference(data: bytes, part_size: int) -> str:
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)] or [b""]
    digests = b"".join(hashlib.sha256(part).digest() for part in parts)
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{len(parts)}"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Module-scoped: hypothesis runs many examples per test function.
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def write(folder: Path, data: bytes) -> Path:
    path = folder / "data.bin"
    path.write_bytes(data)
    return path


# --- the tree hash itself -----------------------------------------------------


@pytest.mark.parametrize("size", BOUNDARIES)
def test_every_entry_point_matches_botocore_at_boundaries(scratch: Path, size: int) -> None:
    data = random_bytes(size)
    expected = botocore_tree_hash(data)
    path = write(scratch, data)
    assert tree_hash(data) == expected
    assert stream_tree_hash(io.BytesIO(data)) == expected
    for threads in (1, 2, 3):
        assert file_tree_hash(path, threads=threads) == expected


@FAST
@given(size=SIZES, seed=st.integers(0, 2**16))
def test_tree_hash_matches_botocore(scratch: Path, size: int, seed: int) -> None:
    data = random_bytes(size, seed)
    expected = botocore_tree_hash(data)
    assert tree_hash(data) == expected
    path = write(scratch, data)
    assert file_tree_hash(path, threads=1) == expected
    assert file_tree_hash(path, threads=2) == expected


def test_empty_input_is_sha256_of_nothing(scratch: Path) -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_SHA256
    assert tree_hash(b"") == EMPTY_SHA256
    assert combine([]) == EMPTY_SHA256
    assert file_tree_hash(write(scratch, b"")) == EMPTY_SHA256


def test_many_blocks_per_thread(scratch: Path) -> None:
    # 40 MiB: blocks of 8, 4 and 2 leaves, several per thread, a short last one.
    data = random_bytes(40 * MiB + 12345)
    expected = botocore_tree_hash(data)
    path = write(scratch, data)
    assert {file_tree_hash(path, threads=t) for t in (1, 2, 4)} == {expected}


# --- combining parts ------------------------------------------------------------


@FAST
@given(size=SIZES, seed=st.integers(0, 2**16), power=st.integers(0, 3))
def test_combined_part_tree_hashes_equal_the_whole(size: int, seed: int, power: int) -> None:
    data = random_bytes(size, seed)
    part = MiB << power
    parts = [data[i : i + part] for i in range(0, size, part)]
    assert combine(tree_hash(p) for p in parts) == botocore_tree_hash(data)


def test_combine_of_leaf_digests_is_the_tree_hash() -> None:
    data = random_bytes(5 * MiB + 3)
    leaves = [hashlib.sha256(data[i : i + MiB]).digest() for i in range(0, len(data), MiB)]
    assert combine(leaves) == botocore_tree_hash(data)


def test_combine_rejects_what_is_not_a_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        combine([b"short"])


# --- incremental hashers ----------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@FAST
@given(
    size=st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 5 * MiB)),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(0, 5 * MiB), max_size=40),
)
def test_part_hasher_any_chunking_equals_one_shot(size: int, seed: int, cuts: list[int]) -> None:
    data = random_bytes(size, seed)
    hasher = PartHasher()
    for index, chunk in enumerate(split(data, cuts)):
        # Every kind of buffer the spooler might hand over.
        hasher.update((chunk, bytearray(chunk), memoryview(chunk))[index % 3])
    assert hasher.size == size
    assert hasher.sha256 == hashlib.sha256(data).digest()
    assert hasher.tree_hash == botocore_tree_hash(data)


def test_part_hasher_can_be_read_midway() -> None:
    data = random_bytes(3 * MiB + 17)
    hasher = PartHasher()
    hasher.update(data[: MiB + 5])
    assert hasher.tree_hash == botocore_tree_hash(data[: MiB + 5])
    hasher.update(data[MiB + 5 :])
    assert hasher.tree_hash == botocore_tree_hash(data)
    assert hasher.sha256 == hashlib.sha256(data).digest()


def test_tree_hasher_takes_typed_arrays() -> None:
    typed = array.array("i", range(300_000))  # 1.2 MB, items of 4 bytes
    hasher = TreeHasher()
    hasher.update(typed)
    assert hasher.size == len(typed.tobytes())
    assert hasher.digest() == botocore_tree_hash(typed.tobytes())
    assert hasher.hexdigest() == to_hex(hasher.digest())


# --- S3 composite checksums ----------------------------------------------------------


@FAST
@given(
    size=SIZES,
    seed=st.integers(0, 2**16),
    part_size=st.sampled_from([1 * MiB, 2 * MiB, 5 * MiB, 100_003]),
    cuts=st.lists(st.integers(0, 17 * MiB), max_size=10),
)
def test_s3_checksum_matches_hashlib(
    scratch: Path, size: int, seed: int, part_size: int, cuts: list[int]
) -> None:
    data = random_bytes(size, seed)
    expected = s3_reference(data, part_size)
    path = write(scratch, data)
    assert s3_composite_checksum(path, part_size, threads=1) == expected
    assert s3_composite_checksum(str(path), part_size, threads=2) == expected
    assert s3_composite_checksum(io.BytesIO(data), part_size) == expected
    hasher = S3CompositeHasher(part_size)
    for chunk in split(data, cuts):
        hasher.update(chunk)
    assert hasher.checksum() == expected


def test_empty_file_is_one_empty_part(scratch: Path) -> None:
    expected = f"{to_base64(hashlib.sha256(EMPTY_SHA256).digest())}-1"
    assert s3_composite_checksum(write(scratch, b""), 5 * MiB) == expected
    assert S3CompositeHasher(5 * MiB).checksum() == expected


def test_composite_from_part_digests() -> None:
    data = random_bytes(3 * MiB)
    digests = [hashlib.sha256(data[i : i + MiB]).digest() for i in range(0, len(data), MiB)]
    assert composite_checksum(digests) == s3_reference(data, MiB)
    with pytest.raises(ValueError, match="at least one part"):
        composite_checksum([])


def test_file_and_stream_checksums_agree(scratch: Path) -> None:
    data = random_bytes(11 * MiB + 9)
    path = write(scratch, data)
    by_file = file_checksums(path, s3_part_size=5 * MiB)
    by_stream = stream_checksums(io.BytesIO(data), s3_part_size=5 * MiB)
    assert by_file == by_stream
    assert by_file.tree_hash == botocore_tree_hash(data)
    assert by_file.s3_checksum == s3_reference(data, 5 * MiB)
    assert by_file.size == len(data)
    assert file_checksums(path).s3_checksum is None


# --- files that are not plain files ----------------------------------------------------


def test_fifo_is_read_once_for_both_checksums(tmp_path: Path) -> None:
    data = random_bytes(6 * MiB + 1)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    try:
        sums = file_checksums(fifo, s3_part_size=5 * MiB)
    finally:
        writer.join(timeout=30)
    assert sums.tree_hash == botocore_tree_hash(data)
    assert sums.s3_checksum == s3_reference(data, 5 * MiB)


def test_directory_and_missing_file_raise_os_errors(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        file_tree_hash(tmp_path)
    with pytest.raises(FileNotFoundError):
        file_tree_hash(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        s3_composite_checksum(tmp_path, 5 * MiB)


def test_a_file_that_shrinks_while_read_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        source = treehash._Source(fd, str(path), size=20)  # as if it had 20 bytes at open
        with pytest.raises(SourceError, match="shrank"):
            source.read_at(0, 20)
    finally:
        os.close(fd)


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    path = write(tmp_path, b"x")
    with pytest.raises(ValueError, match="threads"):
        file_tree_hash(path, threads=0)
    with pytest.raises(ValueError, match="part size"):
        s3_composite_checksum(path, 0)
    with pytest.raises(ValueError, match="part size"):
        S3CompositeHasher(0)


# --- hex and base64 ------------------------------------------------------------------


def test_hex_round_trip_and_validation() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert from_hex(to_hex(digest)) == digest
    assert to_hex(digest) == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ValueError):
        from_hex("abcd")
    with pytest.raises(ValueError):
        from_hex("zz" * 32)
    assert base64.b64decode(to_base64(digest)) == digest
