"""``aglacier abort``: drop a pending upload on the server and forget it here."""

from __future__ import annotations

import argparse
import contextlib

import anyio

from aglacier.backends.base import Upload
from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import add_destination_options
from aglacier.cli.runner import Session, run_locked
from aglacier.engine.complete import remove_spool
from aglacier.engine.context import shielded
from aglacier.errors import ExitCode, UploadNotFoundError, UsageError
from aglacier.progress.events import Message
from aglacier.state import LogLevel, RecordNotFoundError, RunState

DESCRIPTION = """\
Abort a pending upload: RUN (a number from `aglacier list-pending`) aborts that run's
upload on its destination, deletes its spool and marks it aborted; UPLOAD_ID (an upload
no run here knows, listed by `aglacier list-pending`) is aborted on the configured
destination. The parts already sent are deleted by the server, and what was spooled is
gone: the source has to be backed up again. aglacier never aborts an upload by itself
because of an error; this is the way to do it on purpose.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "abort", run, help="abort a pending upload", description=DESCRIPTION
    )
    parser.add_argument("target", metavar="RUN|UPLOAD_ID")
    add_destination_options(parser)


def run(ctx: Context) -> ExitCode:
    target: str = ctx.args.target

    async def work(session: Session) -> ExitCode:
        if target.isdigit():
            return await _abort_run(session, int(target))
        return await _abort_upload(session, target)

    return run_locked(ctx, work)


async def _abort_run(session: Session, run_id: int) -> ExitCode:
    try:
        found = await session.store.get_run(run_id)
    except RecordNotFoundError:
        raise UsageError(f"there is no run {run_id} (see `aglacier list-pending`)") from None
    if found.state.finished:
        raise UsageError(f"run {run_id} is {found.state}: nothing to abort")
    async with session.engine(found.destination) as engine:
        if found.upload_id is not None:
            # Already gone: forgetting it here is all that is left to do.
            with contextlib.suppress(UploadNotFoundError):
                await engine.backend.abort(Upload(found.upload_id, found.remote_key))
        await shielded(session.store.set_run_state, run_id, RunState.ABORTED, error="aborted")
        if found.spool_path is not None:
            await anyio.to_thread.run_sync(remove_spool, found.spool_path)
        await engine.log(
            LogLevel.WARNING, "run.aborted", f"run {run_id}: aborted on request", run_id=run_id
        )
    return ExitCode.OK


async def _abort_upload(session: Session, upload_id: str) -> ExitCode:
    for run in await session.store.unfinished_runs():
        if run.upload_id == upload_id:
            raise UsageError(
                f"upload {upload_id} belongs to run {run.id} ({run.source}); "
                f"`aglacier abort {run.id}` aborts it and forgets the run"
            )
    async with session.backend() as backend:
        pending = {u.upload_id: u for u in await backend.list_pending()}
        upload = pending.get(upload_id)
        if upload is None:
            raise UsageError(
                f"no pending upload {upload_id} on {session.config.destination.url} "
                "(see `aglacier list-pending`)"
            )
        await backend.abort(Upload(upload.upload_id, upload.key))
    await shielded(
        session.store.log, LogLevel.WARNING, "upload.aborted", f"upload {upload_id} aborted"
    )
    session.reporter.emit(Message("info", f"aborted upload {upload_id}"))
    return ExitCode.OK
