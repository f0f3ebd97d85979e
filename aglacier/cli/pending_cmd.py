"""``aglacier list-pending``: unfinished runs, and uploads on the server nobody tracks."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from aglacier.backends.base import PendingUpload
from aglacier.backends.factory import open_backend
from aglacier.cli.common import Context, SubParsers, add_command, err_console_print
from aglacier.cli.options import add_destination_options, config_from_context
from aglacier.cli.resources import state_file
from aglacier.cli.tables import print_table
from aglacier.config import Config
from aglacier.destination import FileLocation
from aglacier.errors import AglacierError, ExitCode
from aglacier.state import Part, Run, StateStore
from aglacier.units import format_duration, format_size

DESCRIPTION = """\
Show every unfinished backup run: its source and destination, upload id, parts
acknowledged of those spooled, bytes, age, last activity and state, with a warning when
a Glacier vault upload has been idle long enough that the vault may forget it (about
24 hours). Then ask the configured destination for multipart uploads that no run here
knows (left by a lost state, another machine, or a killed tool): abort them with
`aglacier abort UPLOAD_ID`, or add an S3 lifecycle rule (docs/destinations.md).
--local-only skips that question.
"""

VAULT_IDLE_WARNING = timedelta(hours=18)


@dataclass(frozen=True)
class PendingRun:
    run: Run
    parts: list[Part]

    @property
    def acknowledged(self) -> int:
        return sum(1 for p in self.parts if p.uploaded)

    @property
    def acknowledged_bytes(self) -> int:
        return sum(p.size for p in self.parts if p.uploaded)

    @property
    def last_activity(self) -> datetime:
        """The run's last change or part acknowledgement, whichever is later."""
        acks = [p.uploaded_at for p in self.parts if p.uploaded_at is not None]
        return max([self.run.updated_at, *acks])


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "list-pending", run, help="show unfinished uploads", description=DESCRIPTION
    )
    parser.add_argument("--local-only", action="store_true", help="do not ask the destination")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_destination_options(parser)


def run(ctx: Context) -> ExitCode:
    config = config_from_context(ctx)
    pending = anyio.run(_pending_runs, state_file(ctx), backend="asyncio")
    remote: list[PendingUpload] | None = None
    status = ExitCode.OK
    if not ctx.args.local_only:
        try:
            remote = anyio.run(_remote_uploads, config, backend="asyncio")
        except AglacierError as exc:
            err_console_print(
                f"aglacier: warning: could not list uploads on the destination: {exc}"
            )
            status = ExitCode.WARNINGS
    known = {p.run.upload_id for p in pending}
    strangers = [u for u in remote or [] if u.upload_id not in known]
    if ctx.args.json:
        document = {
            "runs": [_run_json(p) for p in pending],
            "untracked_uploads": [_upload_json(u) for u in strangers],
        }
        print(json.dumps(document, indent=2))
        return status
    _print_runs(pending)
    if remote is not None:
        _print_strangers(strangers, str(config.destination.url))
    return status


async def _pending_runs(path: Path) -> list[PendingRun]:
    async with StateStore.open_readonly(path) as store:
        runs = await store.unfinished_runs()
        return [PendingRun(r, await store.parts(r.id)) for r in runs]


async def _remote_uploads(config: Config) -> list[PendingUpload]:
    location = config.destination.url
    built_in = config.origin("destination.url").startswith("default")
    missing = isinstance(location, FileLocation) and not await anyio.Path(location.path).exists()
    if missing and built_in:
        return []  # the built-in folder is made by the first backup
    async with open_backend(config.destination, concurrency=1, retry_attempts=3) as backend:
        return await backend.list_pending()


def _print_runs(pending: list[PendingRun]) -> None:
    if not pending:
        print("no unfinished runs")
        return
    now = datetime.now(UTC)
    rows = []
    for item in pending:
        r = item.run
        rows.append((
            str(r.id), str(r.state), f"{item.acknowledged}/{len(item.parts)}",
            format_size(item.acknowledged_bytes), format_duration(now - r.created_at),
            format_duration(now - item.last_activity), r.upload_id or "-",
            f"{r.source} -> {r.destination}",
        ))  # fmt: skip
    print_table(("run", "state", "parts", "sent", "age", "idle", "upload id", "source"), rows)
    for item in pending:
        idle = now - item.last_activity
        if item.run.destination.startswith("glacier://") and idle > VAULT_IDLE_WARNING:
            print(
                f"warning: run {item.run.id} has been idle for {format_duration(idle)}; a vault "
                "forgets an upload after about 24 hours idle (resume then starts it again)"
            )
    print("run `aglacier resume` to finish them")


def _print_strangers(strangers: list[PendingUpload], destination: str) -> None:
    if not strangers:
        print(f"no untracked uploads on {destination}")
        return
    print(f"\nuploads on {destination} that no run here knows:")
    rows = [
        (u.upload_id, f"{u.initiated:%Y-%m-%d %H:%M}" if u.initiated else "-",
         u.key or u.description or "-")
        for u in strangers
    ]  # fmt: skip
    print_table(("upload id", "started (UTC)", "key or description"), rows)


def _run_json(item: PendingRun) -> dict[str, object]:
    r = item.run
    return {
        "run": r.id,
        "state": str(r.state),
        "source": str(r.source),
        "destination": r.destination,
        "upload_id": r.upload_id,
        "parts_acknowledged": item.acknowledged,
        "parts_spooled": len(item.parts),
        "bytes_acknowledged": item.acknowledged_bytes,
        "archive_size": r.archive_size,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "last_activity": item.last_activity.isoformat(),
        "error": r.error,
    }


def _upload_json(upload: PendingUpload) -> dict[str, object]:
    return {
        "upload_id": upload.upload_id,
        "key": upload.key,
        "description": upload.description,
        "initiated": upload.initiated.isoformat() if upload.initiated else None,
    }
