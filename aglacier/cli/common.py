"""What every command gets: its arguments, the environment, and the configuration."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aglacier.errors import ExitCode


class SubParsers(Protocol):
    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


RunFunc = Callable[["Context"], ExitCode]


@dataclass
class Context:
    """A command's inputs. Only this object reads the process environment."""

    args: argparse.Namespace
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path | None:
        value = getattr(self.args, "config", None)
        return Path(value) if value else None

    @property
    def verbose(self) -> int:
        return int(getattr(self.args, "verbose", 0))

    @property
    def quiet(self) -> bool:
        return bool(getattr(self.args, "quiet", False))


def err_console_print(line: str) -> None:
    """One line to stderr, as plain text (safe under cron and in pipes)."""
    print(line, file=sys.stderr, flush=True)


def add_command(
    sub: SubParsers,
    common: argparse.ArgumentParser,
    name: str,
    run: RunFunc,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Add a sub-command that shares the global options and runs ``run``."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser
