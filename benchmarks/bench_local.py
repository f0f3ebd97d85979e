"""How fast the local folder stores an archive, against writing the same bytes to a file.

Usage: ``python benchmarks/bench_local.py [--size 1GiB] [--part-size 8MiB] [--dir DIR]``

Times, in interleaved rounds (best of ``--rounds``):

- baseline: the same parts written to one file with ``pwrite`` by 4 threads,
  each part synced (``fdatasync``), as a careful program would store them;
- local: :class:`LocalBackend` ``start_upload``, every part through
  ``upload_part`` (4 at a time, as the engine sends them), then ``complete``.

and prints each one's best round, the ratio (target ≤ TARGET: the SHA256 check
of each part is the only pass over the bytes the folder adds, besides its
acknowledgements), the time of ``complete`` alone, and the CPU seconds of this
process. Exits 1 over TARGET.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from aglacier.backends.base import ArchiveInfo, ArchiveTotals, CompletePart, PartChecksums
from aglacier.backends.local import LocalBackend
from aglacier.treehash import combine, tree_hash
from aglacier.units import MiB, format_size, parse_size

#: The folder hashes every part once (SHA256, ~0.85 s of CPU per GiB here) and
#: writes and syncs an acknowledgement per part; before it assembled, re-read and
#: re-hashed everything at ``complete`` (9.5 then).
TARGET = 3.0
CONCURRENCY = 4
DISTINCT_PARTS = 8  # parts cycle through this many random bodies (memory stays small)


@dataclass(frozen=True)
class Archive:
    """Test parts: ``count`` parts cycling through a few random bodies."""

    part_size: int
    count: int
    bodies: list[bytes]
    sha256s: list[bytes]
    tree_hashes: list[bytes]

    def body(self, number: int) -> bytes:
        return self.bodies[number % len(self.bodies)]

    def part(self, number: int) -> PartChecksums:
        index = number % len(self.bodies)
        offset = number * self.part_size
        return PartChecksums(
            number, offset, self.part_size, self.sha256s[index], self.tree_hashes[index]
        )

    def totals(self) -> ArchiveTotals:
        whole = hashlib.sha256()
        for number in range(self.count):
            whole.update(self.body(number))
        trees = [self.part(n).tree_hash for n in range(self.count)]
        size = self.part_size * self.count
        return ArchiveTotals(size, whole.digest(), combine(trees), self.count)


@dataclass
class Timing:
    seconds: float
    cpu: float
    complete: float = 0.0


def main() -> int:
    args = _parse_args()
    count = max(1, args.size // args.part_size)
    bodies = [os.urandom(args.part_size) for _ in range(min(DISTINCT_PARTS, count))]
    archive = Archive(
        args.part_size,
        count,
        bodies,
        [hashlib.sha256(b).digest() for b in bodies],
        [tree_hash(b) for b in bodies],
    )
    totals = archive.totals()
    work = Path(tempfile.mkdtemp(prefix="aglacier-bench-local-", dir=args.dir))
    try:
        return _run(archive, totals, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time the local folder against plain writes.")
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="1GiB")
    parser.add_argument("--part-size", type=parse_size, default=8 * MiB, help="8MiB")
    parser.add_argument("--dir", default="/var/tmp", help="where the files go (/var/tmp)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many (3)")
    return parser.parse_args()


def _run(archive: Archive, totals: ArchiveTotals, work: Path, rounds: int) -> int:
    runs: dict[str, list[Timing]] = {"baseline": [], "local": []}
    for round_ in range(rounds):
        target = work / f"round-{round_}"
        target.mkdir()
        runs["baseline"].append(_timed(_plain_writes, archive, target / "plain"))
        runs["local"].append(_timed(_store, archive, totals, target / "folder"))
        shutil.rmtree(target)
        for name in runs:
            print(_line(name, runs[name][-1], totals.size), _load(), flush=True)
    best = {name: min(found, key=lambda t: t.seconds) for name, found in runs.items()}
    shape = f"{format_size(totals.size)} in parts of {format_size(archive.part_size)}"
    print(f"{shape}, best of {rounds}")
    for name, timing in best.items():
        print(_line(name, timing, totals.size))
    ratio = best["local"].seconds / best["baseline"].seconds
    print(f"local / baseline: {ratio:.2f} (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


def _timed(run: Callable[..., Awaitable[float | None]], *args: object) -> Timing:
    os.sync()
    before = _cpu()
    start = time.perf_counter()
    complete = anyio.run(run, *args)
    return Timing(time.perf_counter() - start, _cpu() - before, complete or 0.0)


async def _plain_writes(archive: Archive, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:

        def write(number: int) -> None:
            os.pwrite(fd, archive.body(number), number * archive.part_size)
            os.fdatasync(fd)

        await _each_part(archive, lambda n: anyio.to_thread.run_sync(write, n))
    finally:
        os.close(fd)


async def _store(archive: Archive, totals: ArchiveTotals, root: Path) -> float:
    """Upload and complete; the seconds ``complete`` took."""
    backend = LocalBackend(root)
    await backend.check()
    info = ArchiveInfo("/bench", "bench-host", datetime.now(UTC), archive.part_size, "bench")
    upload = await backend.start_upload(info)
    etags: dict[int, str | None] = {}

    async def send(number: int) -> None:
        sent = await backend.upload_part(upload, archive.part(number), archive.body(number))
        etags[number] = sent.etag

    await _each_part(archive, send)
    parts = [CompletePart(archive.part(n), etags[n]) for n in range(archive.count)]
    start = time.perf_counter()
    await backend.complete(upload, info, parts, totals)
    return time.perf_counter() - start


async def _each_part(archive: Archive, send: Callable[[int], Awaitable[object]]) -> None:
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def one(number: int) -> None:
        async with limiter:
            await send(number)

    async with anyio.create_task_group() as group:
        for number in range(archive.count):
            group.start_soon(one, number)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _line(name: str, timing: Timing, size: int) -> str:
    rate = size / timing.seconds / 1e6
    line = f"{name:9s} {timing.seconds:6.2f} s {rate:6.0f} MB/s  cpu {timing.cpu:5.2f} s"
    return line + (f"  (complete {timing.complete:.3f} s)" if name == "local" else "")


def _load() -> str:
    return f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"


if __name__ == "__main__":
    sys.exit(main())
