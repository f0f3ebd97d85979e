"""The ``aglacier`` command line: parse, dispatch, map errors to exit codes.

Each command lives in its own ``*_cmd.py`` module with a ``register`` function
that adds a sub-parser and sets ``run`` to a function taking a
:class:`~aglacier.cli.common.Context` and returning an :class:`ExitCode`.
:func:`main` is the only place where exceptions become exit statuses: a user
error prints one line on stderr, never a traceback (``-v`` adds detail).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from aglacier import __version__
from aglacier.cli import (
    abort_cmd,
    backup_cmd,
    catalog_cmd,
    checksum_cmd,
    config_cmd,
    list_cmd,
    log_cmd,
    pending_cmd,
    restore_cmd,
    resume_cmd,
    verify_cmd,
)
from aglacier.cli.common import Context, err_console_print
from aglacier.cli.memory import tune_allocator
from aglacier.errors import AglacierError, ExitCode, UsageError, primary_error

COMMANDS = (
    backup_cmd,
    resume_cmd,
    pending_cmd,
    list_cmd,
    catalog_cmd,
    log_cmd,
    abort_cmd,
    restore_cmd,
    verify_cmd,
    checksum_cmd,
    config_cmd,
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors carry our exit code."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _global_options(*, for_command: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name.

    A sub-parser's copy has no defaults of its own (``SUPPRESS``), or argparse
    would write them over a value given before the command name.
    """
    opts = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS if for_command else None
    )
    group = opts.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $AGLACIER_CONFIG, else "
        "$XDG_CONFIG_HOME/aglacier/config.toml)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if for_command else 0,
        help="more detail; on errors, the cause",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if for_command else False,
        help="only errors and results",
    )
    return opts


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aglacier",
        description="Encrypted, resumable backups to Amazon S3 Glacier storage classes, "
        "Glacier vaults, or a local folder.",
        epilog="Run `aglacier COMMAND --help` for a command's options. "
        "Exit codes are listed in docs/exit-codes.md.",
        parents=[_global_options(for_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"aglacier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _global_options(for_command=True)
    for module in COMMANDS:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status (never raises)."""
    args: argparse.Namespace | None = None
    tune_allocator()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return int(ExitCode.USAGE)
        ctx = Context(args=args, env=dict(os.environ))
        return int(args.run(ctx))
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        return int(_exit_code(primary_error(exc), verbose=bool(args and args.verbose)))


def _exit_code(exc: BaseException, *, verbose: bool) -> ExitCode:
    if isinstance(exc, AglacierError):
        _report(exc, verbose=verbose)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        err_console_print("aglacier: interrupted")
        return ExitCode.INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        # stdout closed early (`aglacier ... | head`): not an error of ours.
        _silence_stdout()
        return ExitCode.OK
    # A bug: still one line unless asked for more.
    if verbose:
        traceback.print_exception(exc)
    err_console_print(
        f"aglacier: internal error: {type(exc).__name__}: {exc}"
        + ("" if verbose else " (run again with -v for the traceback)")
    )
    return ExitCode.ERROR


def _report(exc: AglacierError, *, verbose: bool) -> None:
    err_console_print(f"aglacier: error: {exc.message}")
    if exc.hint:
        err_console_print(f"aglacier: hint: {exc.hint}")
    if verbose and exc.__cause__ is not None:
        err_console_print(f"aglacier: cause: {type(exc.__cause__).__name__}: {exc.__cause__}")


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
