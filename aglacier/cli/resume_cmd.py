"""``aglacier resume``: finish interrupted backups."""

from __future__ import annotations

import argparse
from collections import defaultdict

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import add_config_options
from aglacier.cli.resources import add_output_options
from aglacier.cli.runner import Session, run_locked
from aglacier.engine.resume import resume_run
from aglacier.errors import AglacierError, ExitCode, UsageError
from aglacier.progress.events import Message
from aglacier.state import RecordNotFoundError, Run

DESCRIPTION = """\
Finish every unfinished backup run, or only RUN (a number from `aglacier list-pending`).

A run interrupted while staging is staged again (its ciphertext stream is gone). A run
whose spool is complete is checked against the hashes recorded when it was written, the
destination is asked which parts it already holds, and only the rest is sent; then the
upload is completed and the archive recorded in the catalog. An upload the destination
no longer knows (a vault forgets one after about 24 hours idle) is started again from
the same spool.

Destination settings (profile, region, endpoint) come from the configuration; the
destination itself is the one each run was started with.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "resume", run, help="finish interrupted backups", description=DESCRIPTION
    )
    parser.add_argument("run_id", nargs="?", type=int, metavar="RUN", help="only this run")
    add_output_options(parser)
    add_config_options(parser)


def run(ctx: Context) -> ExitCode:
    async def work(session: Session) -> ExitCode:
        return await _resume(session, ctx.args.run_id)

    return run_locked(ctx, work)


async def _resume(session: Session, run_id: int | None) -> ExitCode:
    runs = await _runs(session, run_id)
    if not runs:
        session.reporter.emit(Message("info", "nothing to resume"))
        return ExitCode.OK
    by_destination: dict[tuple[str, str | None], list[Run]] = defaultdict(list)
    for item in runs:
        by_destination[(item.destination, item.storage_class)].append(item)
    worst = ExitCode.OK
    for (destination, storage_class), group in by_destination.items():
        async with session.engine(destination, storage_class=storage_class) as engine:
            for item in group:
                try:
                    outcome = await resume_run(engine, item)
                except AglacierError as exc:
                    if len(runs) == 1:
                        raise
                    engine.reporter.emit(Message("error", f"run {item.id}: {exc}"))
                    worst = max(worst, exc.exit_code)
                    continue
                if outcome.warnings:
                    worst = max(worst, ExitCode.WARNINGS)
    return worst


async def _runs(session: Session, run_id: int | None) -> list[Run]:
    if run_id is None:
        return await session.store.unfinished_runs()
    try:
        found = await session.store.get_run(run_id)
    except RecordNotFoundError:
        raise UsageError(f"there is no run {run_id} (see `aglacier list-pending`)") from None
    if found.state.finished:
        raise UsageError(f"run {run_id} is {found.state}: nothing to resume")
    return [found]
