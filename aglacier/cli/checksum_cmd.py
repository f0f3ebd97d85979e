"""``aglacier checksum``: print Glacier tree hashes (and S3 checksums) of files."""

from __future__ import annotations

import argparse
import os
import sys

from aglacier.cli.common import Context, SubParsers, add_command, err_console_print
from aglacier.errors import ExitCode, SourceError
from aglacier.treehash import Checksums, file_checksums, stream_checksums, to_hex
from aglacier.units import GiB, MiB, format_size, parse_size

S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * GiB
_MAX_THREADS = 8

DESCRIPTION = """\
Print the Amazon Glacier SHA256 tree hash of each FILE, one line per file, in
the format of sha256sum: the hash in lowercase hex, two spaces, the name.
A FILE of `-` reads standard input. Compare the hash with the `SHA256TreeHash`
of a vault archive (`aws glacier describe-job`, the vault inventory) or with the
`x-amz-sha256-tree-hash` header of a retrieval.

With --s3-part-size, each line also shows the SHA256 checksum that S3 reports
for the file uploaded as a multipart object in parts of that size
(`aws s3api head-object --checksum-mode ENABLED`, field ChecksumSHA256):
  TREEHASH  BASE64-NUMBER_OF_PARTS  FILE

Examples:
  aglacier checksum backup.tar.gpg
  tar -c ~/photos | gpg -e -r me | tee photos.gpg | aglacier checksum -
  aglacier checksum --s3-part-size 64 *.gpg      # parts of 64 MiB

A file that is missing or unreadable is reported on standard error; the
others are still hashed, and the exit code is then 8 (SOURCE)."""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """Add ``checksum`` to the command line."""
    parser = add_command(
        sub,
        common,
        "checksum",
        run,
        help="print Glacier tree hashes (and S3 checksums) of files",
        description=DESCRIPTION,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="a file to hash; - for stdin")
    parser.add_argument(
        "--s3-part-size",
        metavar="SIZE",
        type=_s3_part_size,
        help="also print the S3 ChecksumSHA256 of a multipart upload in parts of SIZE "
        "(5 MiB to 5 GiB; a bare number counts MiB: 64, 64MiB, 1GiB)",
    )


def run(ctx: Context) -> ExitCode:
    """Hash every file in turn; a file that fails does not stop the others."""
    part_size: int | None = ctx.args.s3_part_size
    threads = _threads()
    status = ExitCode.OK
    for name in ctx.args.files:
        try:
            sums = _checksums(name, part_size, threads)
        except (OSError, SourceError) as exc:
            err_console_print(f"aglacier: {_describe(name, exc)}")
            status = ExitCode.SOURCE
            continue
        _write_line(_format_line(name, sums))
    return status


def _checksums(name: str, part_size: int | None, threads: int) -> Checksums:
    if name == "-":
        if sys.stdin is None:  # started with standard input closed
            raise SourceError("-: standard input is closed")
        return stream_checksums(sys.stdin.buffer, s3_part_size=part_size)
    return file_checksums(name, s3_part_size=part_size, threads=threads)


def _s3_part_size(text: str) -> int:
    """An argparse type: a size within S3's part limits (bare numbers are MiB)."""
    try:
        size = parse_size(text, bare_unit=MiB)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not S3_MIN_PART <= size <= S3_MAX_PART:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {format_size(size)}: an S3 part is 5 MiB to 5 GiB"
        )
    return size


def _threads() -> int:
    """Every CPU this process may use, up to a few: hashing is CPU-bound."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, available))


def _describe(name: str, exc: OSError | SourceError) -> str:
    """``PATH: No such file or directory``, worded as coreutils words it."""
    if isinstance(exc, SourceError):
        return exc.message  # already names the file
    reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    return f"{_escape(name).decode('utf-8', 'backslashreplace')}: {reason}"


def _format_line(name: str, sums: Checksums) -> bytes:
    """``HASH  [S3]  NAME\\n`` as bytes, so that any file name prints as it is on disk.

    Like sha256sum, a name holding a backslash, newline or carriage return is
    escaped and the line starts with a backslash.
    """
    escaped = _escape(name)
    prefix = b"\\" if escaped != os.fsencode(name) else b""
    fields = [to_hex(sums.tree_hash)]
    if sums.s3_checksum is not None:
        fields.append(sums.s3_checksum)
    return prefix + "  ".join(fields).encode("ascii") + b"  " + escaped + b"\n"


def _escape(name: str) -> bytes:
    """The name's bytes on disk, with ``\\``, newline and carriage return escaped."""
    raw = os.fsencode(name)
    return raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


def _write_line(line: bytes) -> None:
    # Flushed per line so that results and error lines keep their order.
    stdout = sys.stdout
    stdout.flush()
    binary = getattr(stdout, "buffer", None)
    if binary is None:  # a text-only replacement of sys.stdout
        stdout.write(line.decode("utf-8", "surrogateescape"))
    else:
        binary.write(line)
        binary.flush()
