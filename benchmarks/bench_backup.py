"""The whole ``aglacier backup`` command, timed against baselines in the same run.

Usage: ``python benchmarks/bench_backup.py [--only ratio|concurrency|rss] [--rounds 3]
[--size 1GiB] [--big 4GiB] [--dir DIR] [--also NAME=DIR]``

Each benchmark runs the real CLI (``python -m aglacier backup SOURCE``) as a
subprocess, with a config file like ``tests/functional/conftest.py`` writes and
a fresh state folder, spool and destination per run, and a throwaway
GNUPGHOME with one fresh ed25519/cv25519 key. CPU seconds and peak RSS come
from ``wait4`` on that subprocess: user + system of it and everything it waited
for (tar, gpg), and the largest RSS among them (aglacier's own: tar and gpg
stay far smaller), through a small launcher process (see ``_LAUNCHER``). ``sync``
runs before every timed command, so that one run's write-back does not land on
the next.

1. **ratio**: a backup of the random tree of ``bench_staging.py`` (``--size``,
   cached in ``--dir``) to a local folder against
   ``tar -c | gpg --compress-algo none -e -r FPR > file`` on the same tree; best
   of ``--rounds``, interleaved. Target: aglacier / baseline ≤ 1.15. ``--also``
   times other versions of aglacier in the same rounds, for a before and after.
2. **concurrency**: about 64 MiB in 1 MiB parts to the vault emulator (in this
   process, 50 ms per request), ``-j 8`` against ``-j 1``; best of
   ``--rounds``, interleaved. The target (≥ 5×) is on the run's own time as
   aglacier reports it (``run_finished.seconds``: staging, uploads, complete),
   since the interpreter's start-up and the checks before the run are the same
   fixed cost at any ``-j``; the whole command's time is printed too.
3. **rss**: peak RSS of a default backup (part size auto, concurrency 4) of
   ``--size`` and of ``--big`` (files of a repeated random block, built here and
   removed afterwards). Targets: under 200 MiB, and within 10 % of each other.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench_staging import CACHE_DIR, bench_encryption, build_tree, warm

from aglacier.staging.gpg import kill_gpg_agent
from aglacier.units import MiB, format_size, parse_size

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.15
TARGET_SPEEDUP = 5.0
TARGET_RSS = 200 * MiB
RSS_SPREAD = 0.10
LATENCY = 0.05  # seconds per request at the vault emulator
SMALL_SIZE = 64 * MiB
BIG_BLOCK = 64 * MiB
BIG_FILE = 256 * MiB
BENCHMARKS = ("ratio", "concurrency", "rss")


@dataclass(frozen=True)
class Measured:
    """One finished command: wall seconds, CPU seconds (with its children), peak RSS."""

    seconds: float
    cpu: float
    max_rss: int
    stdout: str


@dataclass(frozen=True)
class Keys:
    gnupghome: Path
    fingerprint: str


@dataclass(frozen=True)
class Destination:
    url: str
    endpoint_url: str | None = None


def main() -> int:
    args = _parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    chosen = args.only or list(BENCHMARKS)
    with _keys() as keys, _scratch(work) as scratch:
        verdicts = []
        if "ratio" in chosen:
            also = dict(_also(item) for item in args.also or ())
            verdicts.append(bench_ratio(work, scratch, keys, args.size, args.rounds, also))
        if "concurrency" in chosen:
            verdicts.append(bench_concurrency(work, scratch, keys, args.rounds))
        if "rss" in chosen:
            verdicts.append(bench_rss(work, scratch, keys, args.size, args.big))
    return 0 if all(verdicts) else 1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Time `aglacier backup` against baselines.")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="repeatable")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many (3)")
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="1GiB")
    parser.add_argument("--big", type=parse_size, default=parse_size("4GiB"), help="4GiB")
    parser.add_argument("--dir", default=str(CACHE_DIR), help="cache and scratch folder")
    parser.add_argument(
        "--also",
        action="append",
        metavar="NAME=DIR",
        help="in benchmark 1, also time the aglacier package in DIR (e.g. an older commit: "
        "git archive COMMIT aglacier | tar -x -C DIR), in the same rounds",
    )
    return parser.parse_args()


def _also(item: str) -> tuple[str, str]:
    name, _, folder = item.partition("=")
    if not name or not (Path(folder) / "aglacier" / "__init__.py").is_file():
        raise SystemExit(f"--also {item}: expected NAME=DIR, DIR holding an aglacier package")
    return name, str(Path(folder).absolute())


@contextmanager
def _keys() -> Iterator[Keys]:
    with tempfile.TemporaryDirectory(prefix="aglacier-bench-gpg-") as home:
        try:
            encryption = bench_encryption(Path(home))
            yield Keys(Path(home), encryption.fingerprints[0])
        finally:
            kill_gpg_agent(Path(home))


@contextmanager
def _scratch(work: Path) -> Iterator[Path]:
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=work))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- running commands -------------------------------------------------------------


#: Runs a command and reports its wait4() rusage. Peak RSS needs this small middleman:
#: a child's ru_maxrss starts from its parent's high-water mark (fork, or vfork until
#: exec), so a command started straight from this process would report ours whenever
#: ours is larger (the vault emulator, the block of the 4 GiB tree).
_LAUNCHER = """
import json, os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    json.dump([os.waitstatus_to_exitcode(status), cpu, usage.ru_maxrss * 1024], out)
"""


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path) -> Measured:
    """Run ``argv`` to its end; raise when it fails. stdout is kept, stderr shown on failure."""
    os.sync()
    report = cwd / ".rusage.json"
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=cwd, check=True)
        seconds = time.perf_counter() - start
        returncode, cpu, max_rss = json.loads(report.read_text())
        report.unlink()
        out.seek(0)
        err.seek(0)
        if returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv[:4])} ... exited {returncode}:\n{tail}")
        return Measured(seconds, cpu, max_rss, out.read().decode())


def aglacier_backup(
    source: Path,
    scratch: Path,
    keys: Keys,
    destination: Destination | None = None,
    *,
    upload: dict[str, str | int] | None = None,
    args: Sequence[str] = ("--no-progress",),
    pythonpath: str | None = None,
) -> tuple[Measured, int]:
    """Back up ``source`` with a fresh state, spool and destination (a local folder by
    default); the measurement and the size of the archive in the local folder (or 0).

    ``pythonpath``: a folder holding another ``aglacier`` package to run instead.
    """
    root = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    try:
        dest = root / "dest"
        dest.mkdir()
        destination = destination or Destination(dest.as_uri())
        config = root / "config.toml"
        config.write_text(_config(destination, keys, root / "spool", upload or {}))
        argv = [sys.executable, "-m", "aglacier", "backup", str(source), *args]
        env = _env(config, root / "state")
        if pythonpath is not None:  # the run's own folder is the working directory
            env["PYTHONPATH"] = pythonpath
        measured = measure(argv, env=env, cwd=root)
        archives = [p for p in dest.rglob("*.tar.gpg") if ".uploads" not in p.parts]
        return measured, sum(p.stat().st_size for p in archives)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _config(destination: Destination, keys: Keys, spool: Path, upload: dict[str, str | int]) -> str:
    lines = ["[destination]", f"url = {json.dumps(destination.url)}"]
    if destination.endpoint_url:
        lines += [f"endpoint_url = {json.dumps(destination.endpoint_url)}", 'region = "us-east-1"']
    lines += [
        "[encryption]",
        f"recipients = [{json.dumps(keys.fingerprint)}]",
        f"gnupghome = {json.dumps(str(keys.gnupghome))}",
        "[backup]",
        f"spool_dir = {json.dumps(str(spool))}",
    ]
    if upload:
        lines += ["[upload]", *(f"{key} = {json.dumps(value)}" for key, value in upload.items())]
    return "\n".join(lines) + "\n"


def _env(config: Path, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGLACIER_"))}
    return env | {
        "AGLACIER_CONFIG": str(config),
        "AGLACIER_STATE_DIR": str(state),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(config.with_name("no-aws-config")),
        "AWS_SHARED_CREDENTIALS_FILE": str(config.with_name("no-aws-credentials")),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _line(name: str, run: Measured, size: int) -> str:
    rate = size / run.seconds / 1e6
    return (
        f"  {name:10s} {run.seconds:6.2f} s {rate:6.0f} MB/s  cpu {run.cpu:6.2f} s  "
        f"peak RSS {format_size(run.max_rss)}"
    )


def _load() -> str:
    return f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"


# --- 1. the whole backup against tar | gpg > file -------------------------------------


def bench_ratio(
    work: Path, scratch: Path, keys: Keys, size: int, rounds: int, also: dict[str, str]
) -> bool:
    tree = build_tree(work / "tree", size)
    warm(tree)
    out = scratch / "baseline.gpg"
    baseline = [
        "bash",
        "-c",
        f"tar -c -C {tree.parent} {tree.name} | gpg --homedir {keys.gnupghome} --batch "
        f"--compress-algo none --trust-model always -e -r {keys.fingerprint} > {out}",
    ]
    print(f"1. backup of {tree} to a local folder against tar | gpg > file, {rounds} rounds")
    contenders: dict[str, str | None] = {"aglacier": None, **also}
    runs: dict[str, list[Measured]] = {"baseline": [], **{name: [] for name in contenders}}
    archive = 0
    for _ in range(rounds):
        runs["baseline"].append(measure(baseline, cwd=scratch))
        archive = out.stat().st_size
        out.unlink()
        print(_line("baseline", runs["baseline"][-1], archive), _load(), flush=True)
        for name, pythonpath in contenders.items():
            measured, _ = aglacier_backup(tree, scratch, keys, pythonpath=pythonpath)
            runs[name].append(measured)
            print(_line(name, measured, archive), _load(), flush=True)
    best = {name: min(found, key=lambda m: m.seconds) for name, found in runs.items()}
    least_cpu = {name: min(m.cpu for m in found) for name, found in runs.items()}
    print(f"  best of {rounds}, {format_size(archive)} of ciphertext:")
    for name, run in best.items():
        print(_line(name, run, archive), f"(least cpu {least_cpu[name]:.2f} s)")
    for name in contenders:
        ratio = best[name].seconds / best["baseline"].seconds
        cpu_ratio = least_cpu[name] / least_cpu["baseline"]
        print(f"  {name} / baseline: {ratio:.2f} (target <= {TARGET_RATIO}); cpu {cpu_ratio:.2f}")
    return best["aglacier"].seconds / best["baseline"].seconds <= TARGET_RATIO


# --- 2. concurrency against a slow server -------------------------------------------


def bench_concurrency(work: Path, scratch: Path, keys: Keys, rounds: int) -> bool:
    tree = build_tree(work / "tree-64MiB", SMALL_SIZE)
    warm(tree)
    # The emulator is in tests/, which is not installed: import it from the checkout.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.vault_emulator import VaultEmulator
    from tests.vault_emulator.testing import glacier_client

    print(f"2. backup of {tree} in 1 MiB parts to the vault emulator, {LATENCY * 1000:.0f} ms")
    print("   per request: -j 8 against -j 1")
    runs: dict[int, list[tuple[Measured, float]]] = {1: [], 8: []}
    with VaultEmulator(scratch / "emulator") as emulator:
        glacier_client(emulator.endpoint_url).create_vault(vaultName="bench")
        emulator.faults.set_latency(LATENCY)
        vault = Destination("glacier://bench", emulator.endpoint_url)
        for _ in range(rounds):
            for jobs in runs:
                upload: dict[str, str | int] = {"part_size": "1MiB", "concurrency": jobs}
                measured, _ = aglacier_backup(
                    tree, scratch, keys, vault, upload=upload, args=["--json"]
                )
                runs[jobs].append((measured, _run_seconds(measured.stdout)))
                print(
                    f"  -j {jobs}: run {runs[jobs][-1][1]:5.2f} s, "
                    f"command {measured.seconds:5.2f} s, cpu {measured.cpu:5.2f} s",
                    _load(),
                    flush=True,
                )
    best = {jobs: min(run for _, run in found) for jobs, found in runs.items()}
    whole = {jobs: min(m.seconds for m, _ in found) for jobs, found in runs.items()}
    speedup = best[1] / best[8]
    print(f"  best run: -j 1 {best[1]:.2f} s, -j 8 {best[8]:.2f} s: {speedup:.1f}x", end="")
    print(f" (target >= {TARGET_SPEEDUP:.0f}x); whole command {whole[1] / whole[8]:.1f}x")
    return speedup >= TARGET_SPEEDUP


def _run_seconds(json_lines: str) -> float:
    """The ``seconds`` of the ``run_finished`` event in ``--json`` output."""
    for line in json_lines.splitlines():
        event = json.loads(line)
        if event.get("event") == "run_finished":
            return float(event["seconds"])
    raise RuntimeError("no run_finished event in the --json output")


# --- 3. memory: the same whatever the archive's size --------------------------------


def bench_rss(work: Path, scratch: Path, keys: Keys, size: int, big: int) -> bool:
    small_tree = build_tree(work / "tree", size)
    big_tree = _repeated_tree(scratch / "tree-big", big)
    print("3. peak RSS of a default backup (part size auto, -j 4) to a local folder")
    peaks = {}
    try:
        for tree, label in ((small_tree, format_size(size)), (big_tree, format_size(big))):
            warm(tree)
            measured, stored = aglacier_backup(tree, scratch, keys)
            peaks[label] = measured.max_rss
            print(_line(label, measured, stored), _load(), flush=True)
    finally:
        shutil.rmtree(big_tree, ignore_errors=True)
    low, high = min(peaks.values()), max(peaks.values())
    spread = high / low - 1
    print(
        f"  peak RSS {format_size(low)} to {format_size(high)}: {spread * 100:.1f} % apart "
        f"(target <= {RSS_SPREAD * 100:.0f} %), under {format_size(TARGET_RSS)}: "
        f"{'yes' if high < TARGET_RSS else 'no'}"
    )
    return spread <= RSS_SPREAD and high < TARGET_RSS


def _repeated_tree(tree: Path, size: int) -> Path:
    """Files of ``BIG_FILE`` bytes: one random block, each copy with its own prefix.

    Real data (not sparse: tar would store holes compactly) that is quick to write.
    """
    tree.mkdir(parents=True)
    block = bytearray(os.urandom(BIG_BLOCK))
    copies = 0
    for index, start in enumerate(range(0, size, BIG_FILE)):
        with (tree / f"file-{index:03d}.bin").open("wb") as out:
            for offset in range(0, min(BIG_FILE, size - start), BIG_BLOCK):
                block[:16] = copies.to_bytes(16, "big")
                copies += 1
                out.write(memoryview(block)[: min(BIG_BLOCK, size - start - offset)])
    os.sync()
    return tree


if __name__ == "__main__":
    sys.exit(main())
