"""What commands open: the state folder, its lock, and the progress reporter."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from aglacier.cli.common import Context
from aglacier.config import state_dir
from aglacier.progress.events import Reporter
from aglacier.state import STATE_FILE_NAME, RunLock


def state_folder(ctx: Context) -> Path:
    """The state folder (``AGLACIER_STATE_DIR`` or the XDG default)."""
    return state_dir(ctx.env)


def state_file(ctx: Context) -> Path:
    return state_folder(ctx) / STATE_FILE_NAME


def run_lock(ctx: Context) -> RunLock:
    """The lock a command takes before it writes state (a sync context manager)."""
    command = shlex.join(["aglacier", *sys.argv[1:]])
    return RunLock(state_folder(ctx), command=command)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--json`` (event lines on stdout) and ``--no-progress``."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "--json",
        action="store_true",
        help="print events as JSON lines on stdout instead of progress bars",
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        help="plain log lines on stderr even on a terminal",
    )


def reporter_for(ctx: Context) -> Reporter:
    """Progress bars on a terminal, plain lines otherwise, JSON or nothing on request."""
    from aglacier.progress import render

    if getattr(ctx.args, "json", False):
        return render.JsonReporter(sys.stdout)
    if ctx.quiet:
        return render.QuietReporter(sys.stderr)
    if sys.stderr.isatty() and not getattr(ctx.args, "no_progress", False):
        return render.RichReporter(sys.stderr, verbose=ctx.verbose)
    return render.PlainReporter(sys.stderr, verbose=ctx.verbose)
