"""Part and whole-archive checks, against digests computed without aglacier."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aglacier.catalog import UNKNOWN_SHA256
from aglacier.restore.checks import (
    Expected,
    damaged_parts,
    expected_parts,
    hash_part,
    part_problem,
    whole_digests,
    whole_problem,
)
from aglacier.state import Archive, Part
from aglacier.state.records import DownloadPart
from tests.restore.helpers import MIB, sha256_hex, tree_hash_hex

pytestmark = pytest.mark.anyio
DATA = os.urandom(3 * MIB + 123)


def archive_of(data: bytes, part_size: int = MIB) -> Archive:
    return Archive(
        id=1,
        run_id=1,
        source=Path("/s"),
        destination="file:///d",
        archive_id="a.tar.gpg",
        size=len(data),
        sha256=sha256_hex(data),
        tree_hash=tree_hash_hex(data),
        part_size=part_size,
        storage_class=None,
        host="h",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        description=None,
        manifest=None,
    )


def part_rows(data: bytes, part_size: int) -> list[Part]:
    now = datetime.now(UTC)
    return [
        Part(1, n, off, len(chunk), sha256_hex(chunk), tree_hash_hex(chunk), now, now, None)
        for n, off in enumerate(range(0, len(data), part_size))
        for chunk in [data[off : off + part_size]]
    ]


def test_hash_part_matches_independent_digests() -> None:
    digests = hash_part(DATA)
    assert digests.sha256 == sha256_hex(DATA)
    assert digests.tree_hash == tree_hash_hex(DATA)


@pytest.mark.parametrize(
    ("scheme", "server"),
    [
        ("s3", base64.b64encode(hashlib.sha256(DATA).digest()).decode()),
        ("glacier", tree_hash_hex(DATA)),
        ("file", sha256_hex(DATA)),
        ("s3", None),
    ],
)
def test_server_checksums_accepted(scheme: str, server: str | None) -> None:
    assert part_problem(hash_part(DATA), server, scheme, None) is None


@pytest.mark.parametrize("scheme", ["s3", "glacier", "file"])
def test_wrong_server_checksum_is_a_problem(scheme: str) -> None:
    wrong = {"s3": base64.b64encode(b"\0" * 32).decode(), "glacier": "0" * 64, "file": "1" * 64}
    problem = part_problem(hash_part(DATA), wrong[scheme], scheme, None)
    assert problem is not None and "the destination sent" in problem


def test_recorded_checksums_catch_what_the_server_cannot() -> None:
    digests = hash_part(DATA)
    server = sha256_hex(DATA)  # the server hashes what it stores: damage included
    assert (
        part_problem(digests, server, "file", Expected(sha256_hex(DATA), tree_hash_hex(DATA)))
        is None
    )
    wrong = Expected("2" * 64, tree_hash_hex(DATA))
    assert "recorded when it was uploaded" in (part_problem(digests, server, "file", wrong) or "")


def test_expected_parts_only_when_they_tile_the_archive() -> None:
    archive = archive_of(DATA)
    rows = part_rows(DATA, MIB)
    assert sorted(expected_parts(archive, rows)) == [0, 1, 2, 3]
    assert expected_parts(archive, rows[:-1]) == {}
    assert expected_parts(archive_of(DATA, 2 * MIB), rows) == {}


async def test_whole_digests_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "download"
    path.write_bytes(DATA)
    archive = archive_of(DATA)
    whole = await whole_digests(path)
    assert whole_problem(archive, whole) is None
    damaged = bytearray(DATA)
    damaged[MIB + 5] ^= 1
    path.write_bytes(damaged)
    problem = whole_problem(archive, await whole_digests(path))
    assert problem is not None and "SHA256" in problem


async def test_unknown_sha256_of_a_rebuilt_vault_entry_leaves_the_tree_hash_check(
    tmp_path: Path,
) -> None:
    path = tmp_path / "download"
    path.write_bytes(DATA)
    archive = dataclasses.replace(archive_of(DATA), sha256=UNKNOWN_SHA256)
    assert whole_problem(archive, await whole_digests(path)) is None
    damaged = bytearray(DATA)
    damaged[7] ^= 1
    path.write_bytes(damaged)
    problem = whole_problem(archive, await whole_digests(path))
    assert problem is not None and "tree hash" in problem


def test_damaged_parts_found_by_recorded_sha256(tmp_path: Path) -> None:
    path = tmp_path / "download"
    damaged = bytearray(DATA)
    damaged[2 * MIB + 1] ^= 0x80
    path.write_bytes(damaged)
    now = datetime.now(UTC)
    recorded = [
        DownloadPart(9, p.part_number, p.offset, p.size, p.sha256, p.tree_hash, now)
        for p in part_rows(DATA, MIB)
    ]
    assert damaged_parts(path, recorded) == [2]
