"""``aglacier log``: the run log, newest last (the original ``--log``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anyio

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.resources import state_file
from aglacier.errors import ExitCode
from aglacier.state import LogEntry, StateStore

DESCRIPTION = """\
Show what aglacier did, newest last: runs started, uploads initiated (with their upload
ids), parts reconciled with the server, retries, warnings from tar, errors, archives
completed. This is the place to look after an unattended (cron) run.
Reads the state without locking it, so it works while a backup runs.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(sub, common, "log", run, help="show the run log", description=DESCRIPTION)
    parser.add_argument(
        "-n", "--lines", type=int, default=50, metavar="N", help="the last N entries (default 50)"
    )
    parser.add_argument(
        "--run", dest="run_id", type=int, metavar="RUN", help="only entries of run RUN"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(ctx: Context) -> ExitCode:
    limit = ctx.args.lines if ctx.args.lines > 0 else None
    entries = anyio.run(_entries, state_file(ctx), limit, ctx.args.run_id, backend="asyncio")
    for entry in entries:
        print(json.dumps(entry_json(entry)) if ctx.args.json else format_entry(entry))
    return ExitCode.OK


async def _entries(path: Path, limit: int | None, run_id: int | None) -> list[LogEntry]:
    async with StateStore.open_readonly(path) as store:
        return await store.log_entries(limit=limit, run_id=run_id)


def format_entry(entry: LogEntry) -> str:
    run = f"run {entry.run_id}" if entry.run_id is not None else "-"
    return (
        f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.level.upper():7}  {run:8}  "
        f"{entry.event:20}  {entry.message}"
    )


def entry_json(entry: LogEntry) -> dict[str, object]:
    return {
        "at": entry.at.isoformat(),
        "level": str(entry.level),
        "run": entry.run_id,
        "event": entry.event,
        "message": entry.message,
        "detail": entry.detail,
    }
