"""Show the progress display on a simulated 2 GiB backup (about ten seconds).

Usage: ``python benchmarks/demo_progress.py [--reporter rich|plain|json] [--resume]``

A staging thread "spools" at about 350 MiB/s, reporting every 2 ms (far more
often than the real pipeline, to show that the display keeps up), while four
upload threads send 64 MiB parts at about 60 MiB/s each, finishing them out of
order. On the way: a warning, a retried part, and the summary. ``--resume``
starts from a run whose first 12 parts the server already has.
"""

from __future__ import annotations

import argparse
import queue
import random
import secrets
import sys
import threading
import time

from aglacier.progress.events import (
    AlreadyUploaded,
    Message,
    PartUploaded,
    PartUploading,
    Reporter,
    Retrying,
    RunFinished,
    RunStarted,
    StagingDone,
    StagingProgress,
)
from aglacier.progress.render import JsonReporter, PlainReporter, RichReporter
from aglacier.units import GiB, MiB

RUN = 42
SIZE = 2 * GiB + 37 * MiB
PART = 64 * MiB
STAGING_RATE = 350 * MiB  # bytes per second
UPLOAD_RATE = 60 * MiB  # per connection
CONNECTIONS = 4
ALREADY = 12  # parts the server has when --resume


def main() -> int:
    args = _parse_args()
    reporter = _reporter(args.reporter)
    started = time.monotonic()
    try:
        _simulate(reporter, resume=args.resume)
        reporter.emit(
            RunFinished(RUN, "done", _archive_id(), SIZE, seconds=time.monotonic() - started)
        )
    finally:
        reporter.close()
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reporter", choices=("rich", "plain", "json"), default="rich")
    parser.add_argument("--resume", action="store_true", help="a resumed, already staged run")
    return parser.parse_args()


def _reporter(kind: str) -> Reporter:
    if kind == "plain":
        return PlainReporter(sys.stderr, interval=2.0)
    if kind == "json":
        return JsonReporter(sys.stdout)
    return RichReporter(sys.stderr)


def _simulate(reporter: Reporter, *, resume: bool) -> None:
    count = -(-SIZE // PART)
    sizes = {n: min(PART, SIZE - (n - 1) * PART) for n in range(1, count + 1)}
    estimate = SIZE if resume else SIZE + 90 * MiB
    reporter.emit(RunStarted(RUN, "/home/me", "s3://backups/home", estimate, PART, resume))
    parts: queue.Queue[int | None] = queue.Queue()
    if resume:
        reporter.emit(AlreadyUploaded(RUN, ALREADY * PART, ALREADY))
        for number in range(ALREADY + 1, count + 1):
            parts.put(number)
    workers = [
        threading.Thread(target=_upload, args=(reporter, parts, sizes)) for _ in range(CONNECTIONS)
    ]
    for worker in workers:
        worker.start()
    if not resume:
        _stage(reporter, parts, sizes)
    for _ in workers:
        parts.put(None)
    for worker in workers:
        worker.join()


def _stage(reporter: Reporter, parts: queue.Queue[int | None], sizes: dict[int, int]) -> None:
    began = time.monotonic()
    queued = spooled = 0
    while spooled < SIZE:
        time.sleep(0.002)
        spooled = min(SIZE, int((time.monotonic() - began) * STAGING_RATE))
        reporter.emit(StagingProgress(RUN, spooled))
        while queued < len(sizes) and (queued * PART + sizes[queued + 1]) <= spooled:
            queued += 1
            parts.put(queued)
            if queued == 8:
                warning = "/home/me/.mozilla/places.sqlite: file changed as we read it"
                reporter.emit(Message("warning", warning))
    reporter.emit(StagingDone(RUN, SIZE, len(sizes)))


def _upload(reporter: Reporter, parts: queue.Queue[int | None], sizes: dict[int, int]) -> None:
    while (number := parts.get()) is not None:
        size = sizes[number]
        reporter.emit(PartUploading(RUN, number, size))
        time.sleep(size / UPLOAD_RATE * random.uniform(0.8, 1.2))
        if number == 5:
            error = "RequestTimeout: Your socket connection to the server was not read from"
            reporter.emit(Retrying(RUN, "upload_part", 2, error, 0.8))
            time.sleep(0.8 + size / UPLOAD_RATE)
        reporter.emit(PartUploaded(RUN, number, size))


def _archive_id() -> str:
    # The shape of a Glacier archive id: 138 characters of URL-safe base64.
    return secrets.token_urlsafe(104)[:138]


if __name__ == "__main__":
    sys.exit(main())
