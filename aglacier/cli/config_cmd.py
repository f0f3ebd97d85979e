"""``aglacier config``: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.options import add_config_options, config_from_context
from aglacier.config import Config, ConfigFile, FileValue, config_file_path, state_dir
from aglacier.errors import ExitCode

DESCRIPTION = """\
Show the configuration aglacier would use, and where each value came from: a built-in
default, the configuration file, or a flag.

The file is --config FILE, else $AGLACIER_CONFIG, else
$XDG_CONFIG_HOME/aglacier/config.toml (~/.config/aglacier/config.toml).
Every key is described in docs/configuration.md.
"""

SHOW_DESCRIPTION = """\
Print the effective configuration as TOML, one key per line, with its origin in a
trailing comment: "# default", "# /path/to/config.toml" or "# flag --to". The output
is itself a valid configuration file. Every override flag below is accepted, so
you can check what a command line would do before running it.

Exit status 4 (and one line on stderr) if the configuration is wrong.
"""

PATH_DESCRIPTION = """\
Print the configuration file in use (and whether it exists) and the state directory.
The file is not read, so this works even when it is broken.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add ``config``, ``config show`` and ``config path``."""
    parser = add_command(
        sub,
        common,
        "config",
        run_bare,
        help="show the configuration and where each value came from",
        description=DESCRIPTION,
    )
    parser.set_defaults(config_help=parser.format_help)
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")
    show = add_command(
        actions,
        common,
        "show",
        run_show,
        help="print the effective configuration with the origin of each value",
        description=SHOW_DESCRIPTION,
    )
    show.add_argument("--json", action="store_true", help="print JSON: value and origin per key")
    add_config_options(show)
    path = add_command(
        actions,
        common,
        "path",
        run_path,
        help="print the configuration file and state directory in use",
        description=PATH_DESCRIPTION,
    )
    path.add_argument("--json", action="store_true", help="print JSON")


def run_bare(ctx: Context) -> ExitCode:
    """Plain ``aglacier config`` acts like plain ``aglacier``: help on stderr, usage status."""
    sys.stderr.write(ctx.args.config_help())
    return ExitCode.USAGE


def run_show(ctx: Context) -> ExitCode:
    """``aglacier config show [--json] [flags]``."""
    config = config_from_context(ctx)
    file = config_file_path(ctx.config_path, ctx.env)
    state = state_dir(ctx.env)
    if ctx.args.json:
        print(json.dumps(show_json(config, file, state), indent=2, ensure_ascii=False))
    else:
        print(show_toml(config, file, state))
    return ExitCode.OK


def run_path(ctx: Context) -> ExitCode:
    """``aglacier config path [--json]``."""
    file = config_file_path(ctx.config_path, ctx.env)
    state = state_dir(ctx.env)
    exists = file.path.is_file()
    if ctx.args.json:
        data = {"file": _file_json(file, exists), "state_dir": str(state)}
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(f"config file: {file.path}  ({_file_status(file, exists)})")
        print(f"state directory: {state}")
    return ExitCode.OK


def show_toml(config: Config, file: ConfigFile, state: Path) -> str:
    """The configuration as TOML, with each value's origin as a trailing comment."""
    rows: list[tuple[str, str]] = []
    section = ""
    for setting in config.settings():
        name, key = setting.key.split(".")
        if name != section:
            rows += [("", ""), (f"[{name}]", "")]
            section = name
        rows.append((_toml_line(key, setting.value), setting.origin))
    width = max(len(text) for text, origin in rows if origin)
    header = [
        f"# config file: {file.path}  ({_file_status(file, config.file is not None)})",
        f"# state directory: {state}",
    ]
    body = [f"{text:<{width}}  # {origin}" if origin else text for text, origin in rows]
    return "\n".join(header + body)


def show_json(config: Config, file: ConfigFile, state: Path) -> dict[str, Any]:
    """The configuration as JSON-ready data: ``config.SECTION.KEY.{value,origin}``,
    values written as in the file (``"8MiB"``, ``"7d"``; null: not set)."""
    sections: dict[str, dict[str, Any]] = {}
    for setting in config.settings():
        name, key = setting.key.split(".")
        sections.setdefault(name, {})[key] = {"value": setting.value, "origin": setting.origin}
    return {
        "file": _file_json(file, config.file is not None),
        "state_dir": str(state),
        "config": sections,
    }


def _file_json(file: ConfigFile, exists: bool) -> dict[str, Any]:
    return {"path": str(file.path), "origin": file.origin, "exists": exists}


def _file_status(file: ConfigFile, exists: bool) -> str:
    if exists:
        return f"{file.origin}; exists"
    if file.explicit:
        return f"{file.origin}; does not exist: commands will fail"
    return f"{file.origin}; does not exist: built-in defaults apply"


def _toml_line(key: str, value: FileValue) -> str:
    if value is None:
        return f"# {key} is not set"
    return f"{key} = {toml_value(value)}"


def toml_value(value: str | int | list[str]) -> str:
    """``value`` written as TOML."""
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, int):
        return str(value)
    return '"' + "".join(_toml_char(char) for char in value) + '"'


def _toml_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    # TOML basic strings forbid control characters other than tab, and DEL.
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char
