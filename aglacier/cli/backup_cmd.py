"""``aglacier backup``: encrypt folders and upload them, resumably."""

from __future__ import annotations

import argparse
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import anyio

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import add_config_options, config_from_context
from aglacier.cli.resources import add_output_options, state_file
from aglacier.cli.runner import Session, run_locked
from aglacier.config import Config
from aglacier.destination import FileLocation, S3Location, VaultLocation
from aglacier.engine.backup import Outcome, start_backup
from aglacier.engine.context import Engine, shielded
from aglacier.engine.plan import describe, make_plan
from aglacier.engine.resume import resume_run
from aglacier.errors import ExitCode, PlanError, SourceError, UsageError
from aglacier.progress.events import Message, RunFinished
from aglacier.staging import check_spool_space, estimate_source_size
from aglacier.state import LogLevel, RunState, StateStore
from aglacier.units import format_duration

DESCRIPTION = """\
Back up each SOURCE (a folder or a file): GNU tar, skipping every folder that holds the
exclude tag file (NOBACKUP), encrypted with gpg, spooled to disk as ciphertext only, and
uploaded in parts that go up concurrently while staging goes on. Every acknowledged part
is recorded, so an interrupted backup continues with `aglacier resume`.

Without SOURCE, backs up every folder in [backup] directories that is due (for cron):
a folder backed up less than min_interval ago is skipped, saying when it is due.

A source with an unfinished run is resumed rather than staged again (--restart discards
that run). Exit status: 0 done, 1 done with warnings (files changed or unreadable),
13 stopped with everything saved (run `aglacier resume`); see docs/exit-codes.md.

examples:
  aglacier backup ~/Documents
  aglacier backup --to s3://my-bucket/backups --recipient 'Backup Key' ~/Photos
  aglacier backup -n ~/Photos        # the plan and its cost, nothing sent
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub,
        common,
        "backup",
        run,
        help="encrypt and upload folders",
        description=DESCRIPTION,
    )
    parser.add_argument("sources", nargs="*", metavar="SOURCE", help="folders or files")
    parser.add_argument(
        "-n", "--dry-run", action="store_true", help="print the plan and cost; send nothing"
    )
    parser.add_argument(
        "--force", action="store_true", help="back up even if backed up within min_interval"
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished run of the source (its remote upload is aborted) "
        "and start again",
    )
    add_output_options(parser)
    add_config_options(parser)


def run(ctx: Context) -> ExitCode:
    config = config_from_context(ctx)
    sources = _sources(ctx.args.sources, config)
    if ctx.args.dry_run:
        return _dry_run(ctx, config, sources)
    _create_default_destination(config)

    async def work(session: Session) -> ExitCode:
        return await _backup_all(session, sources)

    return run_locked(ctx, work)


def _sources(args: list[str], config: Config) -> list[Path]:
    if args:
        return [Path(arg).absolute() for arg in args]
    if not config.backup.directories:
        raise UsageError(
            "nothing to back up: name a SOURCE, or list folders in [backup] directories"
        )
    return list(config.backup.directories)


def _create_default_destination(config: Config) -> None:
    """The built-in local folder is made on first use; a configured one never is.

    A configured folder that is missing usually means an unmounted disk, and a
    backup must not land on the system disk instead.
    """
    location = config.destination.url
    if isinstance(location, FileLocation) and config.origin("destination.url").startswith(
        "default"
    ):
        location.path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _dry_run(ctx: Context, config: Config, sources: list[Path]) -> ExitCode:
    """What a real run would do for each source, from a read-only look at the state."""
    from aglacier.backends.limits import LOCAL_LIMITS, S3_LIMITS, VAULT_LIMITS

    location = config.destination.url
    limits, price = LOCAL_LIMITS, None
    if isinstance(location, S3Location):
        limits, price = S3_LIMITS, str(config.destination.storage_class)
    elif isinstance(location, VaultLocation):
        limits, price = VAULT_LIMITS, "vault"
    for source in sources:
        pending, due = anyio.run(_dry_state, ctx, config, source, backend="asyncio")
        if pending is not None and not ctx.args.restart:
            print(f"would resume unfinished run {pending} of {source} (--restart discards it)")
            continue
        if due is not None and not ctx.args.force and not ctx.args.restart:
            print(f"would skip {source}: backed up recently, next due {due:%Y-%m-%d %H:%M} UTC")
            continue
        estimate = estimate_source_size(source, config.backup.exclude_tag)
        plan = make_plan(
            str(source),
            estimate,
            limits,
            requested_part_size=config.upload.part_size,
            destination=str(location),
            price_key=price,
        )
        print("\n".join(describe(plan)))
        try:
            check_spool_space(config.backup.spool_dir, estimate)
        except PlanError as exc:
            print(f"  would fail: {exc}")
    print("dry run: nothing was sent or written")
    return ExitCode.OK


async def _dry_state(
    ctx: Context, config: Config, source: Path
) -> tuple[int | None, datetime | None]:
    """The unfinished run of ``source`` (its id) and when it is next due, read-only."""
    async with StateStore.open_readonly(state_file(ctx)) as store:
        destination = str(config.destination.url)
        pending = await store.unfinished_run_for(source, destination)
        last = await store.last_done_run(source, destination)
    interval = config.backup.min_interval
    due = None
    if interval and last is not None and last.finished_at is not None:
        due = last.finished_at + interval
    if due is not None and due <= datetime.now(UTC):
        due = None
    return (pending.id if pending else None), due


async def _backup_all(session: Session, sources: list[Path]) -> ExitCode:
    worst = ExitCode.OK
    async with session.engine() as engine:
        for source in sources:
            try:
                outcome = await _backup_one(session, engine, source)
            except (SourceError, UsageError) as exc:
                if len(sources) == 1:
                    raise
                text = str(exc) if str(source) in str(exc) else f"{source}: {exc}"
                engine.reporter.emit(Message("error", text))
                worst = max(worst, exc.exit_code)
                continue
            if outcome.warnings:
                worst = max(worst, ExitCode.WARNINGS)
    return worst


async def _backup_one(session: Session, engine: Engine, source: Path) -> Outcome:
    if not await anyio.Path(source).exists() and not await anyio.Path(source).is_symlink():
        raise SourceError(f"{source}: no such file or folder")
    store = engine.store
    unfinished = await store.unfinished_run_for(source, engine.destination)
    restarted = unfinished is not None and session.ctx.args.restart
    if unfinished is not None and restarted:
        await _discard(engine, unfinished.id)
        unfinished = None
    if unfinished is not None:
        engine.reporter.emit(Message("info", f"{source}: resuming unfinished run {unfinished.id}"))
        return await resume_run(engine, unfinished)
    due = await _next_due(engine, source)
    if due is not None and not session.ctx.args.force and not restarted:
        wait = format_duration(due - datetime.now(UTC))
        engine.reporter.emit(
            Message("info", f"{source}: backed up recently; next due in {wait} "
                    f"({due:%Y-%m-%d %H:%M} UTC); --force backs it up now")
        )  # fmt: skip
        return Outcome(None, "skipped")
    return await start_backup(engine, source)


async def _next_due(engine: Engine, source: Path) -> datetime | None:
    interval = engine.config.backup.min_interval
    if not interval:
        return None
    last = await engine.store.last_done_run(source, engine.destination)
    if last is None or last.finished_at is None:
        return None
    due = last.finished_at + interval
    return due if due > datetime.now(UTC) else None


async def _discard(engine: Engine, run_id: int) -> None:
    """--restart: abort the run's remote upload (asked for by the user) and forget it."""
    from aglacier.backends.base import Upload
    from aglacier.engine.complete import remove_spool
    from aglacier.errors import UploadNotFoundError

    run = await engine.store.get_run(run_id)
    if run.upload_id is not None:
        with contextlib.suppress(UploadNotFoundError):
            await engine.backend.abort(Upload(run.upload_id, run.remote_key))
    await shielded(engine.store.set_run_state, run.id, RunState.ABORTED, error="--restart")
    if run.spool_path is not None:
        await anyio.to_thread.run_sync(remove_spool, run.spool_path)
    await engine.log(
        LogLevel.WARNING, "run.discarded", f"run {run.id}: discarded (--restart)", run_id=run.id
    )
    engine.reporter.emit(RunFinished(run.id, "aborted"))
