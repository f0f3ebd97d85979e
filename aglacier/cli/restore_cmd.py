"""``aglacier restore``: bring an archive back, check it, decrypt and extract it safely."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio

from aglacier.backends.base import Tier
from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import ALL_FLAGS
from aglacier.cli.resources import add_output_options, reporter_for
from aglacier.cli.runner import Session, run_locked
from aglacier.errors import (
    AglacierError,
    ExitCode,
    NotReadyError,
    ResumableError,
    StateLockedError,
    TransientBackendError,
    UsageError,
)
from aglacier.progress.events import Message, Reporter, TaskProgress
from aglacier.restore import (
    Confirm,
    Decryption,
    Destination,
    Retrieve,
    Work,
    parse_date,
    resolve_decryption,
    restore_archive,
    select_archive,
)
from aglacier.restore.status import status_lines
from aglacier.state import Archive
from aglacier.units import format_duration

DESCRIPTION = """\
Restore an archive from the catalog: SOURCE (a backed-up folder: its newest archive, or
with --date the newest on or before that day), or ARCHIVE (a catalog id from `aglacier
list`, or an archive id). Extracts into --to DIR (default: the current folder) what
`tar -x -C DIR` would: restoring ~/photos gives DIR/photos. Never writes over existing
files without --overwrite, never outside DIR, and leaves no plaintext behind on failure.

From S3 Glacier classes and vaults the archive must first be retrieved (hours). The
request is shown with its expected wait and cost and needs confirmation (--yes for
scripts); it is recorded, so running the same command again picks it up instead of
paying twice. Until it is ready the command exits with 14 and says when to come back;
--wait waits instead. The download is checked part by part and as a whole before
anything is decrypted, and a stopped download resumes where it was.

Exit status: 0 restored, 14 not ready yet, 12 checksum mismatch, 7 gpg failed,
13 interrupted (run the same command again); see docs/restore.md.

examples:
  aglacier restore ~/photos --to /mnt/spare
  aglacier restore 42 --tier bulk --yes --wait
  aglacier restore --status
"""

#: The first wait between two checks of a retrieval, and the longest.
POLL_FIRST = 30.0
POLL_FACTOR = 30  # the longest wait is POLL_FACTOR times the first (30 s → 15 min)
DEFAULT_DAYS = 7
#: Configuration keys these commands override, with their help here (None: the usual).
OVERRIDES: dict[str, str | None] = {
    "destination.endpoint_url": None,
    "destination.profile": None,
    "destination.region": None,
    "encryption.passphrase_file": "decrypt with the passphrase in FILE (symmetric archives)",
    "encryption.gnupghome": "gpg home folder holding the secret key (default: gpg's)",
    "upload.concurrency": "parts downloaded at once, 1 to 64 (default 4)",
    "backup.spool_dir": "where the encrypted archive is downloaded",
}
_RESUME_HINT = "run the same command again: the parts downloaded so far are kept"


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "restore", run, help="restore an archive", description=DESCRIPTION
    )
    parser.add_argument("target", nargs="?", metavar="SOURCE|ARCHIVE")
    parser.add_argument(
        "--to",
        dest="restore_to",
        metavar="DIR",
        help="folder to extract into (default: the current folder); with --archive-only, "
        "the file (or folder) for the encrypted archive",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing files the archive also has"
    )
    parser.add_argument(
        "--archive-only",
        action="store_true",
        help="keep the verified encrypted archive (.tar.gpg) instead of decrypting it",
    )
    parser.add_argument(
        "--status", action="store_true", help="show the retrievals in progress; request nothing"
    )
    add_retrieval_options(parser, default_tier="standard")
    add_output_options(parser)


def add_retrieval_options(parser: argparse.ArgumentParser, *, default_tier: str) -> None:
    """Options shared by ``restore`` and ``verify``."""
    group = parser.add_argument_group("retrieval")
    group.add_argument("--date", metavar="YYYY-MM-DD", help="the newest archive on or before")
    group.add_argument(
        "--tier",
        choices=[t.value.lower() for t in Tier],
        help=f"retrieval speed and price (default: {default_tier}; "
        "Deep Archive has no expedited); see docs/restore.md",
    )
    group.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        help=f"S3: days to keep the restored copy (default {DEFAULT_DAYS})",
    )
    group.add_argument(
        "--wait", action="store_true", help="wait for the retrieval instead of exiting with 14"
    )
    group.add_argument("-y", "--yes", action="store_true", help="do not ask before paying")
    group.add_argument(
        "--poll-interval", type=float, default=POLL_FIRST, help=argparse.SUPPRESS
    )  # tests: the first wait between checks (the longest is 30 times that)
    group = parser.add_argument_group("configuration overrides")
    for flag in ALL_FLAGS:
        if flag.key in OVERRIDES:
            help_text = OVERRIDES[flag.key] or flag.help
            group.add_argument(
                *flag.names, dest=flag.dest, metavar=flag.metavar, help=f"{help_text} [{flag.key}]"
            )


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 365:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to 365")
    return int(text)


def retrieve_from(args: argparse.Namespace) -> Retrieve:
    """``--tier`` and ``--days``."""
    return Retrieve(Tier(args.tier.capitalize()) if args.tier else None, args.days)


def run(ctx: Context) -> ExitCode:
    args = ctx.args
    if args.status:
        return _status(ctx)
    if not args.target:
        raise UsageError("name a SOURCE folder or an ARCHIVE (see `aglacier list`), or --status")
    retrieve = retrieve_from(args)
    destination = Destination(
        Path(args.restore_to).expanduser() if args.restore_to else None,
        archive_only=args.archive_only,
        overwrite=args.overwrite,
    )

    async def body(session: Session, work: Work, archive: Archive) -> None:
        def decryption() -> Decryption:
            return resolve_decryption(session.config.encryption, session.ctx.env)

        await restore_archive(work, archive, retrieve, destination, decryption)

    return run_retrieval(ctx, body)


Body = Callable[[Session, Work, Archive], Awaitable[None]]


def run_retrieval(ctx: Context, body: Body) -> ExitCode:
    """Select the archive, run ``body`` under the state lock; with ``--wait``, poll.

    Between two checks the state lock is released, so backups can run while a
    retrieval is prepared (hours): each check takes it again, asks the destination,
    and goes on with the download once the retrieval is ready.
    """
    args = ctx.args
    on_or_before = parse_date(args.date) if args.date else None

    async def work(session: Session) -> ExitCode:
        archive = await select_archive(session.store, args.target, on_or_before=on_or_before)
        async with session.backend(archive.destination) as backend:
            job = Work(
                session.store,
                backend,
                session.reporter,
                session.config.backup.spool_dir,
                session.config.upload.concurrency,
                _confirm(session.reporter, yes=args.yes),
            )
            await body(session, job, archive)
        return ExitCode.OK

    started = time.monotonic()
    delay = max(args.poll_interval, 0.01)
    longest = delay * POLL_FACTOR
    while True:
        try:
            return _locked(ctx, work)
        except NotReadyError as exc:
            if not args.wait:
                raise
            waiting = exc.message
        except StateLockedError:
            if not args.wait or time.monotonic() - started < delay:
                raise
            waiting = "another aglacier holds the state"
        waited = format_duration(timedelta(seconds=time.monotonic() - started))
        _say(
            ctx,
            f"{waiting}; waited {waited}, next check in "
            f"{format_duration(timedelta(seconds=delay))}",
        )
        try:
            _wait_with_bar(ctx, waiting, started, delay)
        except KeyboardInterrupt:
            raise NotReadyError(
                "stopped waiting", hint="the retrieval is recorded: run the same command again"
            ) from None
        delay = min(delay * 2, longest)


def _locked(ctx: Context, work: Callable[[Session], Awaitable[ExitCode]]) -> ExitCode:
    """:func:`run_locked`, raising the user error itself rather than a task group's group."""
    try:
        return run_locked(ctx, work)
    except BaseExceptionGroup as group:
        error = _first_error(group)
        if error is None:
            raise
    except AglacierError as exc:
        error = exc
    if isinstance(error, ResumableError):  # the runner's "interrupted": its hint is for backups
        raise ResumableError(error.message, hint=_RESUME_HINT) from error
    if isinstance(error, TransientBackendError):
        raise TransientBackendError(error.message, hint=_RESUME_HINT) from error
    raise error


def _first_error(group: BaseExceptionGroup[BaseException]) -> AglacierError | None:
    for inner in group.exceptions:
        if isinstance(inner, KeyboardInterrupt):
            return None  # main() turns it into its own exit status
        found = _first_error(inner) if isinstance(inner, BaseExceptionGroup) else inner
        if isinstance(found, AglacierError):
            return found
    return None


def _confirm(reporter: Reporter, *, yes: bool) -> Confirm:
    async def confirm(lines: list[str]) -> bool:
        if yes:
            for line in lines:
                reporter.emit(Message("info", line))
            return True
        if not sys.stdin.isatty():
            raise UsageError(
                "a retrieval costs money and needs confirmation, and standard input is not "
                "a terminal: " + "; ".join(line.strip() for line in lines[1:3]),
                hint="add --yes to request it without asking",
            )
        prompt = "\n".join(lines) + "\nrequest this retrieval? [y/N] "
        answer = await anyio.to_thread.run_sync(_ask, prompt, abandon_on_cancel=True)
        return answer.strip().lower() in ("y", "yes")

    return confirm


def _ask(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def _wait_with_bar(ctx: Context, waiting: str, started: float, delay: float) -> None:
    """Sleep ``delay`` seconds showing how long the wait has lasted (a live bar on a terminal).

    The state lock is not held meanwhile, so backups can run during a retrieval.
    """
    reporter = reporter_for(ctx)
    until = time.monotonic() + delay
    try:
        while (left := until - time.monotonic()) > 0:
            waited = int(time.monotonic() - started)
            reporter.emit(TaskProgress("wait", waiting, waited, None, unit="seconds"))
            time.sleep(min(1.0, left))
    finally:
        reporter.close()


def _say(ctx: Context, text: str) -> None:
    reporter = reporter_for(ctx)
    try:
        reporter.emit(Message("info", text))
    finally:
        reporter.close()


def _status(ctx: Context) -> ExitCode:
    args = ctx.args
    on_or_before = parse_date(args.date) if args.date else None

    async def work(session: Session) -> ExitCode:
        archive = None
        if args.target:
            archive = await select_archive(session.store, args.target, on_or_before=on_or_before)
        lines = await status_lines(
            session.store, session.backend, None if archive is None else archive.id
        )
        print("\n".join(lines) if lines else "no retrievals in progress")
        return ExitCode.OK

    return _locked(ctx, work)
