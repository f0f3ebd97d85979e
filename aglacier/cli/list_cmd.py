"""``aglacier list``: the catalog of finished archives (the original ``--db``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anyio

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.resources import state_file
from aglacier.cli.tables import print_table
from aglacier.errors import ExitCode
from aglacier.state import Archive, StateStore
from aglacier.units import format_size

DESCRIPTION = """\
List the archives aglacier has finished, oldest first: when, which source, how large,
where, and the archive's id (the vault archive id, the S3 key, or the file under the
local folder). --json prints every field, including the SHA256 and tree hash.
Reads the state without locking it, so it works while a backup runs.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "list", run, help="list finished archives", description=DESCRIPTION
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="only archives of SOURCE")
    parser.add_argument("--json", action="store_true", help="print JSON (one array)")


def run(ctx: Context) -> ExitCode:
    source = Path(ctx.args.source).absolute() if ctx.args.source else None
    archives = anyio.run(_archives, state_file(ctx), source, backend="asyncio")
    if ctx.args.json:
        print(json.dumps([archive_json(a) for a in archives], indent=2))
        return ExitCode.OK
    if not archives:
        print("no archives yet")
        return ExitCode.OK
    rows = [
        (str(a.id), f"{a.created_at:%Y-%m-%d %H:%M}", str(a.source), format_size(a.size),
         a.destination, a.archive_id)
        for a in archives
    ]  # fmt: skip
    print_table(("#", "created (UTC)", "source", "size", "destination", "archive"), rows)
    return ExitCode.OK


async def _archives(path: Path, source: Path | None) -> list[Archive]:
    async with StateStore.open_readonly(path) as store:
        return await store.archives(source)


def archive_json(archive: Archive) -> dict[str, object]:
    return {
        "id": archive.id,
        "run": archive.run_id,
        "source": str(archive.source),
        "destination": archive.destination,
        "archive_id": archive.archive_id,
        "size": archive.size,
        "sha256": archive.sha256,
        "tree_hash": archive.tree_hash,
        "part_size": archive.part_size,
        "storage_class": archive.storage_class,
        "host": archive.host,
        "created_at": archive.created_at.isoformat(),
    }
