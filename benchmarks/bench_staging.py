"""How fast ``stage()`` spools a folder, against the plain shell pipeline.

Usage: ``python benchmarks/bench_staging.py [--size 1GiB] [--dir DIR] [--rounds 3]``

Builds a tree of random (incompressible) files from 4 KiB to 32 MiB once, in
``DIR/tree`` (kept between runs), reads it once so that it sits in the page
cache, makes a throwaway GNUPGHOME with one key, then times in interleaved rounds

- baseline: ``tar -c tree | gpg --compress-algo none -e -r FPR > file``
- aglacier: ``stage()`` to a spool file, 8 MiB parts (hashing every part, the
  whole archive, and the final fsync included)

and prints each one's best round, the ratio (target ≤ TARGET), the CPU seconds
each used (user + system, all processes: a fairer figure on a busy machine than
the wall clock) and the peak RSS of this Python process, and how much of it
stage() added (staging holds no part in memory: a few MiB whatever the size).
On a shared machine, ``nice -n -10`` (as root) approximates an idle one for both.
Exits 1 when the ratio is over TARGET.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from aglacier.config import EncryptionConfig
from aglacier.staging import Encryption, SpooledPart, resolve_encryption, stage
from aglacier.staging.gpg import kill_gpg_agent
from aglacier.units import KiB, MiB, format_size, parse_size

TARGET = 1.15  # stage / baseline, the target for the whole backup
MIN_FILE, MAX_FILE = 4 * KiB, 32 * MiB
PART_SIZE = 8 * MiB
#: Where the random tree is kept between runs (bench_backup.py shares it).
CACHE_DIR = Path("/var/tmp/aglacier-bench-staging")


@dataclass
class Timing:
    seconds: float
    cpu: float  # user + system of this process and its children


def main() -> int:
    args = _parse_args()
    tree = build_tree(Path(args.dir) / "tree", args.size)
    warm(tree)
    with tempfile.TemporaryDirectory(prefix="aglacier-bench-gpg-") as home:
        encryption = bench_encryption(Path(home))
        try:
            return _run(tree, Path(args.dir), encryption, args.rounds)
        finally:
            kill_gpg_agent(Path(home))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time stage() against tar | gpg > file.")
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="1GiB")
    parser.add_argument("--dir", default=str(CACHE_DIR), help="cache folder for the tree")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many (3)")
    return parser.parse_args()


def build_tree(tree: Path, size: int) -> Path:
    """Files of log-uniform sizes, random bytes, in 16 folders; built once."""
    done = tree / ".complete"
    if done.exists() and done.read_text() == str(size):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(2026)
    total = count = 0
    while total < size:
        length = int(math.exp(rng.uniform(math.log(MIN_FILE), math.log(MAX_FILE))))
        folder = tree / f"folder-{count % 16:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"file-{count:05d}.bin").open("wb") as file:
            for offset in range(0, length, MiB):  # 1 MiB at a time: keeps our RSS low
                file.write(os.urandom(min(MiB, length - offset)))
        total += length
        count += 1
    done.write_text(str(size))
    print(f"built {tree}: {count} files, {format_size(total)}")
    return tree


def warm(tree: Path) -> None:
    # Through a pipe: GNU tar skips reading file data when writing to /dev/null.
    command = f"tar -c -C {tree.parent} {tree.name} | cat > /dev/null"
    subprocess.run(command, shell=True, check=True)  # noqa: S602  # our own paths


def bench_encryption(home: Path) -> Encryption:
    """A fresh ed25519/cv25519 key in the throwaway ``home``, checked as a backup would."""
    subprocess.run(
        [
            *("gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key"),
            *("aglacier bench <bench@example.invalid>", "future-default", "default", "never"),
        ],
        check=True,
        capture_output=True,
    )
    config = EncryptionConfig(recipients=("bench@example.invalid",), gnupghome=home)
    return resolve_encryption(config, os.environ)


def _run(tree: Path, work: Path, encryption: Encryption, rounds: int) -> int:
    out = work / "out.gpg"
    spool = work / "spool" / "bench.spool"
    fpr = encryption.fingerprints[0]
    baseline = (
        f"tar -c -C {tree.parent} {tree.name} | gpg --homedir {encryption.gnupghome} --batch "
        f"--compress-algo none --trust-model always -e -r {fpr} > {out}"
    )
    results: dict[str, list[Timing]] = {"baseline": [], "stage": []}
    size = 0
    rss_before = _peak_rss()
    try:
        for _ in range(rounds):
            out.unlink(missing_ok=True)
            results["baseline"].append(_timed(lambda: _shell(baseline)))
            spool.unlink(missing_ok=True)
            results["stage"].append(_timed(lambda: anyio.run(_stage, tree, spool, encryption)))
            size = spool.stat().st_size
            print(_line("baseline", results["baseline"][-1], size), _load(), flush=True)
            print(_line("stage", results["stage"][-1], size), _load(), flush=True)
    finally:
        out.unlink(missing_ok=True)
        spool.unlink(missing_ok=True)
    return _report(results, size, rss_before)


def _shell(command: str) -> None:
    subprocess.run(command, shell=True, check=True)  # noqa: S602  # the baseline is a shell pipe


async def _stage(tree: Path, spool: Path, encryption: Encryption) -> None:
    send, receive = anyio.create_memory_object_stream[SpooledPart](math.inf)
    async with anyio.create_task_group() as group:
        group.start_soon(_drain, receive)
        await stage(
            tree,
            spool,
            part_size=PART_SIZE,
            encryption=encryption,
            exclude_tag="NOBACKUP",
            parts=send,
        )


async def _drain(receive: anyio.abc.ObjectReceiveStream[SpooledPart]) -> None:
    async with receive:
        async for _ in receive:
            pass


def _timed(run: Callable[[], None]) -> Timing:
    before = _cpu()
    start = time.perf_counter()
    run()
    return Timing(time.perf_counter() - start, _cpu() - before)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _line(name: str, timing: Timing, size: int) -> str:
    rate = size / timing.seconds / 1e6
    return f"{name:9s} {timing.seconds:6.2f} s {rate:5.0f} MB/s  cpu {timing.cpu:5.2f} s"


def _load() -> str:
    return f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"


def _report(results: dict[str, list[Timing]], size: int, rss_before: int) -> int:
    best = {name: min(runs, key=lambda t: t.seconds) for name, runs in results.items()}
    cpu = {name: min(t.cpu for t in runs) for name, runs in results.items()}
    ratio = best["stage"].seconds / best["baseline"].seconds
    print(f"archive: {format_size(size)} of ciphertext, best of {len(results['stage'])}")
    for name in ("baseline", "stage"):
        print(_line(name, best[name], size), f"(least cpu {cpu[name]:.2f} s)")
    cpu_ratio = cpu["stage"] / cpu["baseline"]
    print(f"stage / baseline: {ratio:.2f} (target <= {TARGET}); cpu ratio {cpu_ratio:.2f}")
    peak = _peak_rss()
    print(
        f"peak RSS of this Python process: {format_size(peak)} "
        f"({format_size(peak - rss_before)} more than before the first stage())"
    )
    return 0 if ratio <= TARGET else 1


def _peak_rss() -> int:
    # Our own high-water mark only: RUSAGE_CHILDREN would count the forked
    # Python image of every tar and gpg before exec, not what they use.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB


if __name__ == "__main__":
    sys.exit(main())
