"""The part splitter and hasher, the spool file and the spool space check.

Oracles: hashlib for SHA256, botocore's ``calculate_tree_hash`` for tree hashes.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
import threading
import time
from pathlib import Path

import pytest
from botocore.utils import calculate_tree_hash

from aglacier.errors import ExitCode, PlanError
from aglacier.staging import SpooledPart, check_spool_space
from aglacier.staging import spool as spool_module
from aglacier.staging.spool import SpoolFile, StreamHasher, free_space, prepare_spool_dir
from aglacier.units import MiB


def _tree_hash(data: bytes) -> bytes:
    return bytes.fromhex(calculate_tree_hash(io.BytesIO(data)))


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut at random places, some cuts tiny, some over a MiB."""
    pieces, pos = [], 0
    while pos < len(data):
        size = rng.choice([1, 7, 4096, MiB - 1, MiB, MiB + 5, 3 * MiB])
        pieces.append(data[pos : pos + size])
        pos += size
    return pieces


def _hash(data: bytes, part_size: int, seed: int = 0) -> tuple[list[SpooledPart], bytes, int]:
    parts: list[SpooledPart] = []
    hasher = StreamHasher(part_size, parts.append)
    for chunk in _chunks(data, random.Random(seed)):
        hasher.update(chunk)
    digests = hasher.finish()
    assert digests.size == len(data)
    assert digests.part_count == len(parts)
    return parts, digests.tree_hash, digests.size


def _check_parts(data: bytes, part_size: int, parts: list[SpooledPart]) -> None:
    offset = 0
    for number, part in enumerate(parts):
        assert part.number == number
        assert part.offset == offset
        piece = data[part.offset : part.offset + part.size]
        assert part.size == (part_size if number < len(parts) - 1 else len(piece))
        assert part.sha256 == hashlib.sha256(piece).digest()
        assert part.tree_hash == _tree_hash(piece)
        offset += part.size
    assert offset == len(data)


@pytest.mark.parametrize(
    ("size", "part_size"),
    [
        (5 * MiB + 123, MiB),  # vault-style: parts made of whole leaves
        (6 * MiB, 2 * MiB),  # ends exactly on a part boundary
        (6 * MiB + 1, 2 * MiB),  # one byte into a last part
        (5 * MiB - 1, 4 * MiB),  # last leaf short
        (7 * MiB + 99, 3 * MiB // 2 + 3),  # not a MiB multiple: leaves straddle parts
        (3 * MiB, 5 * MiB),  # one part, shorter than the part size
        (10_000, 1000),  # tiny parts within one leaf
    ],
)
def test_parts_and_whole_tree_hash_match_independent_hashes(size: int, part_size: int) -> None:
    data = random.Random(size).randbytes(size)
    parts, tree, _ = _hash(data, part_size, seed=part_size)
    _check_parts(data, part_size, parts)
    assert tree == _tree_hash(data)


def test_chunking_does_not_change_anything() -> None:
    data = random.Random(1).randbytes(4 * MiB + 17)
    assert _hash(data, MiB, seed=1) == _hash(data, MiB, seed=2)


def test_empty_input_is_one_empty_part() -> None:
    parts, tree, size = _hash(b"", MiB)
    empty = hashlib.sha256(b"").digest()
    assert (size, tree) == (0, empty)
    assert parts == [SpooledPart(0, 0, 0, empty, empty)]


def test_parts_are_emitted_as_soon_as_complete() -> None:
    parts: list[SpooledPart] = []
    hasher = StreamHasher(MiB, parts.append)
    hasher.update(bytes(MiB - 1))
    assert parts == []
    hasher.update(bytes(2))
    assert [part.size for part in parts] == [MiB]
    hasher.finish()
    assert [part.size for part in parts] == [MiB, 1]


def test_part_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        StreamHasher(0, lambda part: None)


# --- spool file ---------------------------------------------------------------------


def test_spool_folder_is_private_and_the_spool_file_0600(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not matter
    try:
        spool_dir = tmp_path / "cache" / "spool"
        prepare_spool_dir(spool_dir)
        spool = SpoolFile(spool_dir / "run.spool")
        spool.write(b"ciphertext")
        spool.sync()
        spool.close()
        spool.close()  # idempotent
    finally:
        os.umask(old)
    assert stat.S_IMODE(spool_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((spool_dir / "run.spool").stat().st_mode) == 0o600
    assert (spool_dir / "run.spool").read_bytes() == b"ciphertext"


def test_an_existing_spool_file_is_never_reused(tmp_path: Path) -> None:
    (tmp_path / "run.spool").write_bytes(b"old")
    with pytest.raises(PlanError, match="already exists") as caught:
        SpoolFile(tmp_path / "run.spool")
    assert caught.value.exit_code == ExitCode.PLAN
    assert (tmp_path / "run.spool").read_bytes() == b"old"


def test_write_back_starts_before_the_final_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "FLUSH_EVERY", 64 * 1024)
    synced: list[int] = []
    fdatasync = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(fd)
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", spy)
    spool = SpoolFile(tmp_path / "run.spool")
    try:
        for _ in range(4):
            spool.write(bytes(64 * 1024))
        deadline = time.monotonic() + 10
        while not synced and time.monotonic() < deadline:
            time.sleep(0.01)
        spool.sync()
    finally:
        spool.close()
    assert synced  # by the flusher thread, while writing went on
    assert "aglacier-spool-flush" not in [t.name for t in threading.enumerate()]


def test_check_spool_space(tmp_path: Path) -> None:
    free = free_space(tmp_path)
    check_spool_space(tmp_path, free // 2)
    check_spool_space(tmp_path / "not" / "made" / "yet", free // 2)
    with pytest.raises(PlanError, match=r"not enough space in the spool folder .* free") as caught:
        check_spool_space(tmp_path, free)  # free × 1.1 is more than free
    assert caught.value.exit_code == ExitCode.PLAN
