"""Finish an unfinished run from wherever it stopped.

The server is the truth about which parts it holds; the database is a cache
of it. See the resume steps in ``docs/design.md``.
"""

from __future__ import annotations

import contextlib
import time

import anyio

from aglacier.backends.base import Upload, UploadedPart
from aglacier.engine.backup import (
    Outcome,
    announce_stop,
    stage_and_upload,
    start_upload,
    stopped,
)
from aglacier.engine.complete import (
    complete_run,
    part_checksums,
    record_archive,
    remove_spool,
    totals_of,
)
from aglacier.engine.context import Engine, shielded
from aglacier.engine.spoolcheck import spool_problem
from aglacier.engine.uploader import UploadPool
from aglacier.errors import CompletionUnknownError, UploadNotFoundError
from aglacier.progress.events import AlreadyUploaded, RunStarted
from aglacier.state import LogLevel, Part, Run, RunState
from aglacier.treehash import from_hex, to_base64, to_hex


async def resume_run(engine: Engine, run: Run) -> Outcome:
    """Resume one unfinished run; returns when it is done or raises why it stopped."""
    async with announce_stop(engine, run.id):
        return await _resume(engine, run)


async def _resume(engine: Engine, run: Run) -> Outcome:
    await engine.log(
        LogLevel.INFO, "run.resume", f"run {run.id}: resuming ({run.state})", run_id=run.id,
        show=False,
    )  # fmt: skip
    await engine.check_destination()
    if run.state in (RunState.PLANNED, RunState.STAGING):
        return await restage(engine, run, "it was interrupted while staging")
    if run.state is RunState.COMPLETING:
        done = await _finish_completing(engine, run)
        if done is not None:
            return done
    problem = await anyio.to_thread.run_sync(spool_problem, run, await engine.store.parts(run.id))
    if problem is not None:
        return await restage(engine, run, problem)
    return await _upload_rest(engine, run)


async def restage(engine: Engine, run: Run, why: str) -> Outcome:
    """Throw away the spool and the remote upload of ``run`` and stage it again.

    The old upload holds ciphertext under a session key that no longer exists,
    so it is aborted: the one abort aglacier makes unasked, never on an error.
    """
    await engine.log(
        LogLevel.WARNING, "run.restage", f"run {run.id}: staging again: {why}", run_id=run.id
    )
    if run.upload_id is not None:
        with contextlib.suppress(UploadNotFoundError):
            await engine.backend.abort(Upload(run.upload_id, run.remote_key))
        await engine.log(
            LogLevel.INFO,
            "upload.aborted",
            f"run {run.id}: aborted upload {run.upload_id}: its parts were encrypted under "
            "a session key that is gone with the interrupted staging",
            run_id=run.id,
            show=False,
        )
        await shielded(engine.store.clear_upload, run.id)
    run = await shielded(engine.store.delete_parts, run.id)
    if run.spool_path is not None:
        await anyio.to_thread.run_sync(remove_spool, run.spool_path)
    return await stage_and_upload(engine, run, resumed=True)


async def _finish_completing(engine: Engine, run: Run) -> Outcome | None:
    """After a crash in ``completing``: record the archive if the complete took effect.

    ``None`` means it did not (or cannot be known and the upload is gone): the
    caller then sends what is missing from the spool and completes.
    """
    assert run.upload_id is not None
    upload = Upload(run.upload_id, run.remote_key)
    parts = await engine.store.parts(run.id)
    try:
        found = await engine.backend.find_completed(
            upload, engine.archive_info(run), totals_of(run, len(parts))
        )
    except CompletionUnknownError:
        # A vault cannot look an archive up, but completing the same upload again
        # answers with the same archive id while the vault remembers the upload.
        try:
            archive_id = await complete_run(engine, run, upload)
        except UploadNotFoundError:
            await engine.log(
                LogLevel.WARNING,
                "run.completion_unknown",
                f"run {run.id}: the vault no longer knows upload {run.upload_id}, so whether "
                "it completed cannot be told; sending the archive again from the spool (the "
                "vault may then hold it twice; an inventory will show)",
                run_id=run.id,
            )
            return None
        return Outcome(run.id, "done", archive_id)
    if found is None:
        return None
    return Outcome(run.id, "done", await record_archive(engine, run, found))


async def _upload_rest(engine: Engine, run: Run) -> Outcome:
    """A staged run: ask the server what it has, send the rest, complete."""
    started = time.monotonic()
    parts = await engine.store.parts(run.id)
    upload, on_server = await _current_upload(engine, run)
    acknowledged = _matching(parts, on_server)
    await shielded(engine.store.set_uploaded_parts, run.id, acknowledged)
    missing = [p for p in parts if p.part_number not in acknowledged]
    engine.reporter.emit(
        RunStarted(run.id, str(run.source), run.destination, run.archive_size or 0,
                   run.part_size, resumed=True)
    )  # fmt: skip
    done_bytes = sum(p.size for p in parts if p.part_number in acknowledged)
    engine.reporter.emit(AlreadyUploaded(run.id, done_bytes, len(acknowledged)))
    await engine.log(
        LogLevel.INFO,
        "run.reconciled",
        f"run {run.id}: the server holds {len(acknowledged)} of {len(parts)} parts; "
        f"sending {len(missing)}",
        run_id=run.id,
        show=False,
    )
    assert run.spool_path is not None
    pool = UploadPool(engine, run.id, upload, run.spool_path)
    async with anyio.create_task_group() as group:
        pool.start(group)
        for part in missing:
            pool.submit(part_checksums(part))
        pool.close()
    if pool.error is not None:
        raise await stopped(engine, run, pool.error)
    run = await engine.store.get_run(run.id)
    archive_id = await complete_run(engine, run, upload, started=started)
    return Outcome(run.id, "done", archive_id)


async def _current_upload(engine: Engine, run: Run) -> tuple[Upload, list[UploadedPart]]:
    """The run's upload and the parts the server holds; a new upload if it is gone."""
    if run.upload_id is not None:
        upload = Upload(run.upload_id, run.remote_key)
        try:
            return upload, await engine.backend.list_parts(upload)
        except UploadNotFoundError:
            await engine.log(
                LogLevel.WARNING,
                "upload.gone",
                f"run {run.id}: the destination no longer knows upload {run.upload_id}; "
                "starting a new upload from the spool",
                run_id=run.id,
            )
    return await start_upload(engine, run), []


def _matching(parts: list[Part], on_server: list[UploadedPart]) -> dict[int, str | None]:
    """Parts the server holds with our size and (where it reports one) our checksum."""
    ours = {p.part_number: p for p in parts}
    result: dict[int, str | None] = {}
    for item in on_server:
        part = ours.get(item.number)
        if part is not None and part.size == item.size and _same_checksum(part, item.checksum):
            result[item.number] = item.etag
    return result


def _same_checksum(part: Part, reported: str | None) -> bool:
    if reported is None:
        return True  # the server reports none (moto); its size matched
    sha256 = from_hex(part.sha256)
    accepted = {to_base64(sha256), part.sha256, part.tree_hash, to_hex(sha256)}
    return reported in accepted
