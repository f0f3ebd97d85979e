"""The last step of a run: complete the upload, record the archive, drop the spool."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import anyio

from aglacier.backends.base import (
    ArchiveTotals,
    CompletePart,
    PartChecksums,
    StoredArchive,
    Upload,
)
from aglacier.engine.context import Engine, shielded
from aglacier.errors import AglacierError
from aglacier.progress.events import RunFinished
from aglacier.state import LogLevel, Part, Run, RunState
from aglacier.treehash import from_hex


def part_checksums(part: Part) -> PartChecksums:
    return PartChecksums(
        part.part_number, part.offset, part.size, from_hex(part.sha256), from_hex(part.tree_hash)
    )


def totals_of(run: Run, part_count: int) -> ArchiveTotals:
    assert run.archive_size is not None and run.archive_sha256 and run.archive_tree_hash
    return ArchiveTotals(
        size=run.archive_size,
        sha256=from_hex(run.archive_sha256),
        tree_hash=from_hex(run.archive_tree_hash),
        part_count=part_count,
    )


async def complete_run(
    engine: Engine, run: Run, upload: Upload, *, started: float | None = None
) -> str:
    """Complete a staged run whose parts are all acknowledged; returns the archive id.

    ``started`` (``time.monotonic()``) is when this command began the run, for the summary.
    """
    parts = await engine.store.parts(run.id)
    missing = [p.part_number for p in parts if not p.uploaded]
    if missing:
        raise AglacierError(
            f"run {run.id}: {len(missing)} parts are not acknowledged yet",
            hint="run `aglacier resume`",
        )
    await shielded(engine.store.set_run_state, run.id, RunState.COMPLETING)
    if started is None:
        started = time.monotonic()
    stored = await engine.backend.complete(
        upload,
        engine.archive_info(run),
        [CompletePart(part_checksums(p), p.etag) for p in parts],
        totals_of(run, len(parts)),
    )
    return await record_archive(engine, run, stored, seconds=time.monotonic() - started)


async def record_archive(
    engine: Engine, run: Run, stored: StoredArchive, *, seconds: float | None = None
) -> str:
    """Write the catalog row (atomically with the run's end) and remove the spool."""
    await shielded(
        engine.store.complete_run,
        run.id,
        stored.archive_id,
        manifest={"location": stored.location, "size": stored.size},
    )
    await engine.log(
        LogLevel.INFO,
        "run.done",
        f"run {run.id}: archive {stored.archive_id} stored at {stored.location}",
        run_id=run.id,
        detail={"archive_id": stored.archive_id, "location": stored.location},
        show=False,
    )
    if run.spool_path is not None:
        await anyio.to_thread.run_sync(remove_spool, run.spool_path)
    engine.reporter.emit(
        RunFinished(run.id, "done", stored.archive_id, stored.size, seconds=seconds)
    )
    return stored.archive_id


def remove_spool(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
