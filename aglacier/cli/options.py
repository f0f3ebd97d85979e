"""Flags that override the configuration file, shared by every command that uses them.

A command adds the groups it needs (``add_destination_options(parser)``...) and calls
:func:`config_from_context`. Flag values stay strings here: :mod:`aglacier.config`
validates them like file values, and reports a bad one as a usage error naming the
flag (``flag --concurrency: upload.concurrency: must be a whole number from 1 to 64``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from aglacier.cli.common import Context
from aglacier.config import Config, Override, load_config


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one configuration key."""

    key: str  # dotted configuration key, e.g. "destination.url"
    names: tuple[str, ...]  # the long name last: it is the origin shown to the user
    metavar: str
    help: str
    repeatable: bool = False

    @property
    def dest(self) -> str:
        # A prefix keeps these apart from a command's own arguments.
        return "config_" + self.key.replace(".", "_")

    @property
    def origin(self) -> str:
        return f"flag {self.names[-1]}"


DESTINATION_FLAGS = (
    Flag(
        "destination.url",
        ("--to",),
        "URL",
        "where archives go: s3://BUCKET[/PREFIX], glacier://VAULT or file:///PATH",
    ),
    Flag(
        "destination.endpoint_url",
        ("--endpoint-url",),
        "URL",
        "an S3-compatible service or a test server: http(s)://HOST[:PORT]",
    ),
    Flag(
        "destination.storage_class",
        ("--storage-class",),
        "CLASS",
        "S3 storage class: DEEP_ARCHIVE (default), GLACIER, GLACIER_IR, STANDARD, "
        "STANDARD_IA, ONEZONE_IA or INTELLIGENT_TIERING",
    ),
    Flag("destination.profile", ("--profile",), "NAME", "AWS profile (default: AWS's own chain)"),
    Flag("destination.region", ("--region",), "REGION", "AWS region, e.g. us-east-1"),
)
ENCRYPTION_FLAGS = (
    Flag(
        "encryption.recipients",
        ("--recipient",),
        "KEY",
        "encrypt to this gpg key name or fingerprint; repeat for more keys "
        "(replaces the configured list)",
        repeatable=True,
    ),
    Flag(
        "encryption.passphrase_file",
        ("--passphrase-file",),
        "FILE",
        "encrypt symmetrically with the passphrase in FILE instead of to keys",
    ),
    Flag("encryption.gnupghome", ("--gnupghome",), "DIR", "gpg home folder (default: gpg's)"),
)
UPLOAD_FLAGS = (
    Flag(
        "upload.part_size",
        ("-b", "--part-size"),
        "SIZE",
        'upload part size: "auto" (default) or a size such as 8MiB; a bare number means MiB (-b 8)',
    ),
    Flag(
        "upload.concurrency",
        ("-j", "--concurrency"),
        "N",
        "parts uploaded at once, 1 to 64 (default 4)",
    ),
)
BACKUP_FLAGS = (
    Flag("backup.spool_dir", ("--spool-dir",), "DIR", "where ciphertext waits for its upload"),
    Flag("backup.exclude_tag", ("--exclude-tag",), "NAME", "skip folders holding a file NAME"),
    Flag(
        "backup.min_interval",
        ("--min-interval",),
        "DURATION",
        "skip a source backed up less than DURATION ago, e.g. 7d (0: never skip)",
    ),
)
ALL_FLAGS = DESTINATION_FLAGS + ENCRYPTION_FLAGS + UPLOAD_FLAGS + BACKUP_FLAGS


def add_destination_options(parser: argparse.ArgumentParser) -> None:
    """``--to``, ``--endpoint-url``, ``--storage-class``, ``--profile``, ``--region``."""
    _add_group(parser, "destination", DESTINATION_FLAGS)


def add_encryption_options(parser: argparse.ArgumentParser) -> None:
    """``--recipient`` (repeatable), ``--passphrase-file``, ``--gnupghome``."""
    _add_group(parser, "encryption", ENCRYPTION_FLAGS)


def add_upload_options(parser: argparse.ArgumentParser) -> None:
    """``-b/--part-size``, ``-j/--concurrency``."""
    _add_group(parser, "upload", UPLOAD_FLAGS)


def add_backup_options(parser: argparse.ArgumentParser) -> None:
    """``--spool-dir``, ``--exclude-tag``, ``--min-interval``."""
    _add_group(parser, "backup", BACKUP_FLAGS)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Every override flag, in four groups."""
    add_destination_options(parser)
    add_encryption_options(parser)
    add_upload_options(parser)
    add_backup_options(parser)


def _add_group(parser: argparse.ArgumentParser, section: str, flags: tuple[Flag, ...]) -> None:
    group = parser.add_argument_group(f"{section} (override [{section}] in the config file)")
    for flag in flags:
        group.add_argument(
            *flag.names,
            dest=flag.dest,
            metavar=flag.metavar,
            action="append" if flag.repeatable else "store",
            help=f"{flag.help} [{flag.key}]",
        )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Override]:
    """The override flags given on the command line, by dotted key."""
    overrides: dict[str, Override] = {}
    for flag in ALL_FLAGS:
        value = getattr(args, flag.dest, None)  # None: not given, or not on this command
        if value is not None:
            overrides[flag.key] = Override(value, flag.origin)
    return overrides


def config_from_context(ctx: Context) -> Config:
    """The effective configuration: the file (``--config``, ``$AGLACIER_CONFIG`` or
    the default), overridden by the flags above."""
    return load_config(ctx.config_path, ctx.env, overrides_from_args(ctx.args))
