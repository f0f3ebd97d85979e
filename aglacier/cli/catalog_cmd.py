"""``aglacier catalog rebuild``: rebuild a lost catalog from the destination."""

from __future__ import annotations

import argparse
import json

from aglacier.backends.base import ListedArchive, ListingBackend
from aglacier.catalog import (
    UNKNOWN_SHA256,
    RebuildResult,
    fetch_inventory,
    finish_inventory,
    rebuild_catalog,
)
from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import add_destination_options
from aglacier.cli.runner import Session, run_locked
from aglacier.cli.tables import print_table
from aglacier.errors import AglacierError, ExitCode, ResumableError, UsageError
from aglacier.progress.events import Message
from aglacier.units import format_size

DESCRIPTION = """\
Work on the catalog of finished archives (what `aglacier list` shows).
"""

REBUILD_DESCRIPTION = """\
Rebuild the catalog from the destination, for when the state database is lost: every
archive aglacier finished there is added, with its source, host, size, hashes and part
size, read from the manifest beside it (S3, local folder) or its description (vault).
Archives the catalog already has are left alone, so running it twice adds nothing.

S3 and local folders are listed at once. A Glacier vault lists its archives only
through an inventory job, which takes hours: the first run requests it (or reuses one
already on the vault) and exits with status 14, saying when to come back; the next run
uses the same job. --wait stays and polls instead.

Skipped and reported: a manifest without its archive (an upload that did not
complete), an archive whose size is not its manifest's, objects aglacier did not
write, and vault archives with another tool's description (--all adds those).
Exit status: 0 done, 1 done but something skipped needs a look, 14 the vault's
inventory is not ready yet. See docs/catalog.md.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "catalog", _no_action, help="rebuild the catalog", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="catalog_action", metavar="ACTION", required=True)
    rebuild = add_command(
        actions,
        common,
        "rebuild",
        run_rebuild,
        help="rebuild the catalog from the destination",
        description=REBUILD_DESCRIPTION,
    )
    rebuild.add_argument(
        "--wait", action="store_true", help="wait for a vault's inventory job (hours)"
    )
    rebuild.add_argument(
        "-n", "--dry-run", action="store_true", help="show what would be added; add nothing"
    )
    rebuild.add_argument(
        "--all",
        dest="include_foreign",
        action="store_true",
        help="also add vault archives another tool wrote",
    )
    # Not dest "json": that would make the progress reporter print events on stdout.
    rebuild.add_argument("--json", dest="json_summary", action="store_true", help="print JSON")
    add_destination_options(rebuild)


def _no_action(ctx: Context) -> ExitCode:  # pragma: no cover - argparse requires ACTION
    raise UsageError("say what to do: `aglacier catalog rebuild`")


def run_rebuild(ctx: Context) -> ExitCode:
    args = ctx.args

    async def work(session: Session) -> ExitCode:
        result = await _rebuild(session, wait=args.wait, include_foreign=args.include_foreign,
                                dry_run=args.dry_run)  # fmt: skip
        if args.json_summary:
            print(json.dumps(result_json(result), indent=2))
        else:
            _print_result(result)
        return ExitCode.WARNINGS if result.needs_a_look else ExitCode.OK

    try:
        return run_locked(ctx, work)
    except ResumableError as exc:  # interrupted (Ctrl-C): nothing to `aglacier resume`
        raise ResumableError(
            exc.message,
            hint="run `aglacier catalog rebuild` again: it keeps what was added, "
            "and a vault's inventory job is reused",
        ) from exc


async def _rebuild(
    session: Session, *, wait: bool, include_foreign: bool, dry_run: bool
) -> RebuildResult:
    destination = str(session.config.destination.url)

    def notify(text: str) -> None:
        session.reporter.emit(Message("info", text))

    async with session.backend() as backend:
        if not isinstance(backend, ListingBackend):  # pragma: no cover - all of ours list
            raise AglacierError(f"{destination} cannot list its archives")
        inventory, job_row = await fetch_inventory(
            session.store, backend, destination, wait=wait, notify=notify
        )
    result = await rebuild_catalog(
        session.store, destination, inventory, include_foreign=include_foreign, dry_run=dry_run
    )
    if not dry_run:
        await finish_inventory(session.store, job_row)
    return result


def _print_result(result: RebuildResult) -> None:
    taken = f" (inventory of {result.taken_at:%Y-%m-%d %H:%M} UTC)" if result.taken_at else ""
    verb = "would be added (dry run: nothing was written)" if result.dry_run else "added"
    print(
        f"{result.destination}{taken}: {result.found} archives found, "
        f"{len(result.added)} {verb}, {len(result.known)} already in the catalog, "
        f"{len(result.skipped)} skipped"
    )
    if result.added:
        print("would add:" if result.dry_run else "added:")
        print_table(("created (UTC)", "source", "size", "archive"), [_row(a) for a in result.added])
    if result.skipped:
        print("skipped:")
        width = max(len(s.reason) for s in result.skipped)
        for item in result.skipped:
            print(f"  {item.reason:<{width}}  {item.name}: {item.detail}")
    notes = [f"{a.archive_id}: {note}" for a in result.added for note in a.notes]
    if any(a.sha256 is None for a in result.added):
        notes.append(
            "a vault keeps no SHA256 of an archive: the catalog records it as unknown "
            "(all zeros); the tree hash is checked instead"
        )
    for note in notes:
        print(f"note: {note}")


def _row(archive: ListedArchive) -> tuple[str, str, str, str]:
    source = archive.source if archive.source is not None else "(foreign)"
    return (f"{archive.created_at:%Y-%m-%d %H:%M}", source, format_size(archive.size),
            archive.archive_id)  # fmt: skip


def result_json(result: RebuildResult) -> dict[str, object]:
    """The ``--json`` document: counts, and each archive added, known or skipped."""
    return {
        "destination": result.destination,
        "dry_run": result.dry_run,
        "inventory_date": result.taken_at.isoformat() if result.taken_at else None,
        "found": result.found,
        "added": [_archive_json(a) for a in result.added],
        "known": [a.archive_id for a in result.known],
        "skipped": [
            {"name": s.name, "reason": s.reason, "detail": s.detail} for s in result.skipped
        ],
    }


def _archive_json(archive: ListedArchive) -> dict[str, object]:
    return {
        "archive_id": archive.archive_id,
        "source": archive.source,
        "host": archive.host,
        "created_at": archive.created_at.isoformat(),
        "size": archive.size,
        "sha256": archive.sha256 or UNKNOWN_SHA256,
        "tree_hash": archive.tree_hash,
        "part_size": archive.part_size,
        "storage_class": archive.storage_class,
        "foreign": archive.foreign,
        "notes": list(archive.notes),
    }
