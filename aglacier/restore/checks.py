"""Checking what comes back, before a byte of it is decrypted.

Each part is hashed once (SHA256 and tree hash, in a worker thread) and compared
with every checksum there is for it:

- what the server sent with it: S3's base64 SHA256 of the part (moto sends none),
  a vault's hex tree hash of the range, the local folder's hex SHA256;
- what was recorded when the part was spooled, when the archive was uploaded from
  this machine (the run's ``parts`` rows): catches damage in storage that the
  server's own checksum of what it stores cannot.

The whole download is then checked against the catalog's size, SHA256 and tree
hash: two threads read the file at once, one for each digest.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio

from aglacier.catalog.rebuild import UNKNOWN_SHA256
from aglacier.state import Archive, Part
from aglacier.state.records import DownloadPart
from aglacier.treehash import PartHasher, file_tree_hash, to_base64
from aglacier.units import MiB

_CHUNK = 4 * MiB

#: How each destination encodes the checksum it sends with a part, by URL scheme.
SERVER_CHECKSUMS = {"s3": "base64 SHA256", "glacier": "tree hash", "file": "SHA256"}


@dataclass(frozen=True)
class Expected:
    """A part's checksums as recorded when it was spooled (lowercase hex)."""

    sha256: str
    tree_hash: str


@dataclass(frozen=True)
class PartDigests:
    """What a part read back hashes to (lowercase hex)."""

    sha256: str
    tree_hash: str


def hash_part(data: bytes) -> PartDigests:
    """SHA256 and tree hash of a part, in one pass (call it from a worker thread)."""
    hasher = PartHasher()
    hasher.update(data)
    return PartDigests(hasher.sha256.hex(), hasher.tree_hash.hex())


def part_problem(
    digests: PartDigests, server: str | None, scheme: str, expected: Expected | None
) -> str | None:
    """Why a part read back is not the part that was uploaded, or ``None``.

    ``server`` is the checksum the destination sent with it, encoded as the
    destination at URL ``scheme`` encodes it (see :data:`SERVER_CHECKSUMS`).
    """
    if server is not None:
        kind = SERVER_CHECKSUMS.get(scheme)
        computed = {
            "base64 SHA256": to_base64(bytes.fromhex(digests.sha256)),
            "tree hash": digests.tree_hash,
            "SHA256": digests.sha256,
        }.get(kind or "")
        if computed is not None and _normal(server, kind) != computed:
            return f"the destination sent {kind} {server}, the bytes received hash to {computed}"
    if expected is not None:
        if digests.sha256 != expected.sha256:
            return (
                f"its SHA256 is {digests.sha256}, the one recorded when it was uploaded "
                f"is {expected.sha256}"
            )
        if digests.tree_hash != expected.tree_hash:
            return f"its tree hash is {digests.tree_hash}, recorded {expected.tree_hash}"
    return None


def _normal(checksum: str, kind: str | None) -> str:
    if kind == "base64 SHA256":
        try:  # S3 may pad differently; compare the digests, not the text
            return to_base64(base64.b64decode(checksum, validate=True))
        except ValueError:
            return checksum
    return checksum.lower()


def expected_parts(archive: Archive, parts: Sequence[Part]) -> dict[int, Expected]:
    """The run's recorded part checksums, if they describe exactly this archive's parts.

    Empty when there are none (an archive from a rebuilt catalog), or when they
    were recorded with another part size.
    """
    count = -(-archive.size // archive.part_size)
    by_number = {p.part_number: p for p in parts}
    if len(by_number) != count:
        return {}
    for number in range(count):
        part = by_number.get(number)
        start = number * archive.part_size
        size = min(archive.part_size, archive.size - start)
        if part is None or (part.offset, part.size) != (start, size):
            return {}
    return {n: Expected(p.sha256, p.tree_hash) for n, p in by_number.items()}


@dataclass(frozen=True)
class Whole:
    """The whole download: size, SHA256 and tree hash (lowercase hex)."""

    size: int
    sha256: str
    tree_hash: str


def whole_problem(archive: Archive, whole: Whole) -> str | None:
    """Why the download is not the archive the catalog describes, or ``None``."""
    if whole.size != archive.size:
        return f"it has {whole.size} bytes, the catalog says {archive.size}"
    # A vault catalog rebuilt from an inventory knows no plain SHA256: the tree hash
    # (checked next) is then the whole-archive check.
    if archive.sha256 != UNKNOWN_SHA256 and whole.sha256 != archive.sha256:
        return f"its SHA256 is {whole.sha256}, the catalog says {archive.sha256}"
    if whole.tree_hash != archive.tree_hash:
        return f"its tree hash is {whole.tree_hash}, the catalog says {archive.tree_hash}"
    return None


async def whole_digests(path: Path) -> Whole:
    """Size, SHA256 and tree hash of a file: one worker thread per digest."""
    results: dict[str, str] = {}

    async def sha() -> None:
        results["sha256"] = await anyio.to_thread.run_sync(_file_sha256, path)

    async def tree() -> None:
        digest = await anyio.to_thread.run_sync(lambda: file_tree_hash(path, threads=1))
        results["tree_hash"] = digest.hex()

    async with anyio.create_task_group() as group:
        group.start_soon(sha)
        group.start_soon(tree)
    size = (await anyio.Path(path).stat()).st_size
    return Whole(size, results["sha256"], results["tree_hash"])


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def damaged_parts(path: Path, recorded: Sequence[DownloadPart], *, threads: int = 2) -> list[int]:
    """The recorded parts whose bytes in ``path`` no longer match their SHA256.

    Blocking: for a worker thread. Finds a download damaged on disk after it was
    written (a crash of the machine, a failing disk), to fetch those parts again.
    """
    with ThreadPoolExecutor(max_workers=threads) as pool:
        digests = list(pool.map(lambda p: _range_sha256(path, p.offset, p.size), recorded))
    return [p.part_number for p, d in zip(recorded, digests, strict=True) if d != p.sha256]


def _range_sha256(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < size:
            chunk = os.pread(fd, min(_CHUNK, size - done), offset + done)
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
