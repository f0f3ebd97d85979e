"""Back up one source: plan, stage while uploading, complete, record in the catalog.

See ``docs/design.md`` for the state machine. Every state write happens after
the server acknowledged what it records, in a shielded scope; no remote upload
is ever aborted because of an error.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from aglacier.backends.base import PartChecksums, Upload
from aglacier.engine.complete import complete_run
from aglacier.engine.context import Engine, shielded, utcnow
from aglacier.engine.planner import plan_part_size
from aglacier.engine.uploader import UploadPool
from aglacier.errors import AglacierError
from aglacier.progress.events import RunFinished, RunStarted, StagingDone, StagingProgress
from aglacier.staging import (
    SpooledPart,
    StagingResult,
    check_spool_space,
    estimate_source_size,
    stage,
)
from aglacier.state import LogLevel, Run, RunState
from aglacier.treehash import to_hex


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done`` (possibly with warnings) or ``skipped``."""

    run_id: int | None
    outcome: str
    archive_id: str | None = None
    warnings: tuple[str, ...] = ()


async def start_backup(engine: Engine, source: Path, *, estimate: int | None = None) -> Outcome:
    """A new run of ``source``: plan it, record it, stage and upload it."""
    if estimate is None:
        estimate = await anyio.to_thread.run_sync(
            estimate_source_size, source, engine.config.backup.exclude_tag
        )
    part_size = plan_part_size(
        estimate, engine.backend.limits, requested=engine.config.upload.part_size
    )
    await anyio.to_thread.run_sync(check_spool_space, engine.spool_dir, estimate)
    await engine.encryption()  # an unknown recipient fails here, before anything is recorded
    await engine.check_destination()
    run = await shielded(
        engine.store.create_run,
        source,
        engine.destination,
        part_size=part_size,
        host=engine.host,
        estimated_size=estimate,
        storage_class=_storage_class(engine),
        spool_path=new_spool_path(engine.spool_dir),
    )
    await engine.log(
        LogLevel.INFO,
        "run.created",
        f"run {run.id}: backing up {source} to {engine.destination} in parts of {part_size} bytes",
        run_id=run.id,
        detail={"estimated_size": estimate, "part_size": part_size},
        show=False,
    )
    async with announce_stop(engine, run.id):
        return await stage_and_upload(engine, run, resumed=False)


@asynccontextmanager
async def announce_stop(engine: Engine, run_id: int) -> AsyncIterator[None]:
    """Tell the reporter when a run stops unfinished (its state is saved)."""
    try:
        yield
    except BaseException:
        engine.reporter.emit(RunFinished(run_id, "resumable"))
        raise


def new_spool_path(spool_dir: Path) -> Path:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return spool_dir / f"{stamp}-{secrets.token_hex(4)}.tar.gpg"


def _storage_class(engine: Engine) -> str | None:
    from aglacier.destination import S3Location

    if isinstance(engine.config.destination.url, S3Location):
        return str(engine.config.destination.storage_class)
    return None


async def stage_and_upload(engine: Engine, run: Run, *, resumed: bool) -> Outcome:
    """Stage ``run`` (state planned) into its spool while uploading parts as they come."""
    assert run.spool_path is not None
    started = time.monotonic()
    engine.reporter.emit(
        RunStarted(
            run.id,
            str(run.source),
            run.destination,
            run.estimated_size or 0,
            run.part_size,
            resumed,
        )
    )
    upload = await start_upload(engine, run)
    await shielded(engine.store.set_run_state, run.id, RunState.STAGING)
    pool = UploadPool(engine, run.id, upload, run.spool_path)
    async with anyio.create_task_group() as group:
        pool.start(group)
        result = await _stage_into(engine, run, pool)
        pool.close()
    await engine.log(
        LogLevel.INFO,
        "run.staged",
        f"run {run.id}: staged {result.size} bytes in {result.part_count} parts",
        run_id=run.id,
        detail={"size": result.size, "sha256": to_hex(result.sha256)},
        show=False,
    )
    for warning in result.warnings:
        await engine.log(LogLevel.WARNING, "tar.warning", warning, run_id=run.id)
    if pool.error is not None:
        raise await stopped(engine, run, pool.error)
    run = await engine.store.get_run(run.id)
    archive_id = await complete_run(engine, run, upload, started=started)
    return Outcome(run.id, "done", archive_id, tuple(result.warnings))


async def start_upload(engine: Engine, run: Run) -> Upload:
    """Start a multipart upload and record its id once the server acknowledged it."""
    upload = await engine.backend.start_upload(engine.archive_info(run))
    await shielded(engine.store.set_upload, run.id, upload.upload_id, upload.key)
    await engine.log(
        LogLevel.INFO,
        "upload.initiated",
        f"run {run.id}: upload {upload.upload_id} started",
        run_id=run.id,
        detail={"upload_id": upload.upload_id, "key": upload.key},
        show=False,
    )
    return upload


async def _stage_into(engine: Engine, run: Run, pool: UploadPool) -> StagingResult:
    """Run the tar | gpg pipeline; record each part, then hand it to the pool."""
    assert run.spool_path is not None
    send, receive = anyio.create_memory_object_stream[SpooledPart](math.inf)
    recorded = anyio.Event()

    async def record_parts() -> None:
        async with receive:
            async for part in receive:
                await shielded(
                    engine.store.add_part,
                    run.id,
                    part.number,
                    part.offset,
                    part.size,
                    to_hex(part.sha256),
                    to_hex(part.tree_hash),
                )
                pool.submit(_checksums(part))
        recorded.set()

    def progress(_read: int, spooled: int) -> None:
        engine.reporter.emit(StagingProgress(run.id, spooled))

    async with anyio.create_task_group() as group:
        group.start_soon(record_parts)
        result = await stage(
            run.source,
            run.spool_path,
            part_size=run.part_size,
            encryption=await engine.encryption(),
            exclude_tag=engine.config.backup.exclude_tag,
            parts=send,
            progress=progress,
        )
        await recorded.wait()
        await shielded(
            engine.store.set_staged,
            run.id,
            result.size,
            to_hex(result.sha256),
            to_hex(result.tree_hash),
        )
    engine.reporter.emit(StagingDone(run.id, result.size, result.part_count))
    return result


def _checksums(part: SpooledPart) -> PartChecksums:
    return PartChecksums(part.number, part.offset, part.size, part.sha256, part.tree_hash)


async def stopped(engine: Engine, run: Run, error: AglacierError) -> AglacierError:
    """Record why uploading stopped; the error to raise says how to go on."""
    await engine.log(
        LogLevel.ERROR,
        "upload.stopped",
        f"run {run.id}: uploading stopped: {error}",
        run_id=run.id,
        show=False,
    )
    await shielded(
        engine.store.set_run_state, run.id, (await _state_of(engine, run)), error=str(error)
    )
    if error.hint is None:
        error.hint = "every acknowledged part is recorded; run `aglacier resume` to send the rest"
    return error


async def _state_of(engine: Engine, run: Run) -> RunState:
    return (await engine.store.get_run(run.id)).state
