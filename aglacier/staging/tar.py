"""GNU tar: the command line, what its messages mean, and a size estimate.

The archive is made from the source's parent folder (``-C parent name``), so that
members are ``name/...``: relative, and restorable anywhere with a plain ``tar -x``.

Choices, and why:

- ``--format=gnu``: names are stored as raw bytes (no conversion through the locale,
  so a non-UTF-8 name comes back byte for byte); long names and link targets use
  ``././@LongLink`` records; sizes of 8 GiB and more use base-256 numbers. ``posix``
  (pax) would add an extended header of 1 KiB to every file for its sub-second
  times, and convert names through the locale. Both are read by GNU tar, bsdtar and
  Python's ``tarfile``. Not kept: sub-second mtimes, ACLs and extended attributes.
- ``--exclude-tag-all=TAG``: a folder holding ``TAG`` is left out entirely, tag and
  folder entry included. (``--exclude-tag`` would keep the folder and the tag,
  ``--exclude-tag-under`` the empty folder.)
- ``--sparse``: a file with holes (a VM disk) is stored by its data, not its apparent
  size; tar only looks for holes in files that use fewer blocks than their size.
- Symbolic links are stored, never followed (tar's default; no ``-h``).
- ``--warning=no-file-ignored``: sockets (gpg-agent's, in every home) cannot be
  archived by any tar; saying so on every run would only teach users to ignore
  warnings.
- tar's default record (20 blocks, 10 KiB) on purpose: a plain ``gpg -d | tar -x``
  reads records of that size and stops at the end-of-archive record. With larger
  records (``--blocking-factor=128`` saved ~0.2 CPU-s per GiB) the reader stopped
  before the padding, and gpg then failed with "Broken pipe" on a good restore.
- ``--checkpoint=100 --checkpoint-action=echo=%u`` and ``--totals``: gpg reads
  tar's output straight from the pipe, so nothing in aglacier sees those bytes
  go by; tar itself says how far it got (a line every 100 records, ~1 MiB) and,
  at the end, exactly how many bytes it wrote (:class:`TarMessages` reads both).
- ``LC_ALL=C.UTF-8``: messages in English, so that they can be classified.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aglacier.errors import AglacierError, SourceError

BLOCK = 512
RECORD = 20 * BLOCK  # tar's default record: see the module docstring
NAME_FIELD = 100  # a name or link target this long or longer needs a LongLink record
MAX_MESSAGES = 1000  # tar messages kept in memory; the rest are counted
CHECKPOINT_RECORDS = 100  # a progress line from tar every 100 records (1000 KiB)
_TAR_ENV = {"LC_ALL": "C.UTF-8"}
_INSTALL_HINT = "install GNU tar (macOS: brew install gnu-tar, which provides gtar)"

# What tar says about one member that it could not (fully) read: the archive is
# still complete and valid, so these are warnings even with exit status 2.
_WARNING_RE = re.compile(
    r": (file changed as we read it"
    r"|File removed before we read it"
    r"|File shrank by \d+ bytes; padding with zeros"
    r"|Read error at byte \d+, while reading \d+ bytes: .+"
    r"|Cannot (open|read|stat|lstat|savedir|readlink|close): .+)$"
)
_ROOT_FATAL_RE = re.compile(r"Cannot (open|read|stat|lstat|savedir): .+")
_SUMMARY = "Exiting with failure status due to previous errors"
_CHECKPOINT_RE = re.compile(r"\d+")  # --checkpoint-action=echo=%u: records written
_TOTALS_RE = re.compile(r"Total bytes written: (\d+) ")  # --totals, at the end


@functools.cache
def find_gnu_tar(path: str) -> str:
    """The absolute path of GNU tar on ``path`` (``gtar`` first, then ``tar``).

    Raises :class:`AglacierError` when there is none, or only bsdtar: the archive
    options and message formats used here are GNU tar's.
    """
    for name in ("gtar", "tar"):
        binary = shutil.which(name, path=path)
        if binary is not None and _is_gnu_tar(binary):
            return binary
    found = shutil.which("tar", path=path)
    problem = f"{found} is not GNU tar" if found else "tar is not installed"
    raise AglacierError(f"{problem}: aglacier needs GNU tar", hint=_INSTALL_HINT)


def _is_gnu_tar(binary: str) -> bool:
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "GNU tar" in done.stdout.partition("\n")[0]


def resolve_source(source: Path) -> Path:
    """The source as an absolute path with symbolic links resolved.

    The folder or file named on the command line is followed if it is a link (its
    contents are what the user asked for); links inside it are stored as links.
    Raises :class:`SourceError` when it is missing or not a folder or file.
    """
    try:
        resolved = source.resolve(strict=True)
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        raise SourceError(f"{source}: no such file or folder") from None
    except OSError as exc:
        raise SourceError(f"{source}: {exc.strerror}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise SourceError(f"{source}: not a folder or a regular file")
    return resolved


def member_name(source: Path) -> tuple[Path, str]:
    """The folder tar runs in and the name of the source inside it."""
    if source.parent == source:  # the root folder
        return source, "."
    return source.parent, source.name


def tar_command(tar: str, source: Path, exclude_tag: str) -> list[str]:
    """The command that writes the archive of the (resolved) ``source`` to stdout."""
    parent, name = member_name(source)
    return [
        tar,
        "--create",
        "--file=-",
        "--format=gnu",
        "--sparse",
        f"--checkpoint={CHECKPOINT_RECORDS}",
        "--checkpoint-action=echo=%u",
        "--totals",
        f"--exclude-tag-all={exclude_tag}",
        "--warning=no-file-ignored",
        f"--directory={parent}",
        "--",
        name,
    ]


def spawn_tar(command: list[str]) -> subprocess.Popen[bytes]:
    """Start tar in its own session, so that Ctrl-C reaches only aglacier, which
    then stops tar itself (else tar could die first and gpg finish a truncated
    archive as if it were whole)."""
    return subprocess.Popen(
        ["tar", *command[1:]],  # argv[0] "tar": messages start "tar: ", whatever the path
        executable=command[0],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env={**os.environ, **_TAR_ENV},
        start_new_session=True,
    )


# --- messages and exit status -----------------------------------------------------


@dataclass
class TarMessages:
    """tar's standard error, read line by line in a thread (call :meth:`start`).

    Messages go to ``lines``; the progress lines and totals that
    :func:`tar_command` asks for go to ``written`` and ``total``.
    """

    stream: IO[bytes]
    lines: list[str] = field(default_factory=list)
    dropped: int = 0
    #: Bytes of archive tar has written so far: a lower bound, exact once ``total`` is set.
    written: int = 0
    #: The archive's exact size, once tar has finished writing it.
    total: int | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if isinstance(self.stream, io.RawIOBase):
            # An unbuffered pipe would be read a byte at a time to find the line ends.
            self.stream = io.BufferedReader(self.stream)
        self._thread = threading.Thread(target=self._read, name="aglacier-tar-stderr")
        self._thread.start()

    def join(self) -> None:
        """Wait for end of file (tar has exited or been killed) and close the pipe."""
        if self._thread is not None:
            self._thread.join()
        self.stream.close()

    def _read(self) -> None:
        for raw in self.stream:
            line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
            if self._counted(line):
                continue
            line = line.removeprefix("tar: ")
            if line == _SUMMARY:
                continue
            if len(self.lines) < MAX_MESSAGES:
                self.lines.append(line)
            else:
                self.dropped += 1

    def _counted(self, line: str) -> bool:
        """Take in a progress or totals line; ``False`` for any other line."""
        if line.startswith("tar: ") and _CHECKPOINT_RE.fullmatch(line, 5):
            self.written = max(self.written, int(line[5:]) * RECORD)
            return True
        totals = _TOTALS_RE.match(line)
        if totals:
            self.total = self.written = int(totals.group(1))
            return True
        return False


def tar_warnings(returncode: int, messages: TarMessages, name: str) -> list[str]:
    """Classify how tar ended: its warnings, or :class:`SourceError` when it failed.

    Exit status 1 ("some files differ") is a warning by tar's own definition.
    Exit status 2 is a warning too when every message is about one member that
    could not be read (the archive is complete without it); anything else, and
    any problem with the source itself, is fatal.
    """
    lines = messages.lines
    warnings = [*lines]
    if messages.dropped:
        warnings.append(f"... and {messages.dropped} more messages from tar")
    if returncode < 0:
        raise SourceError(f"tar was killed by signal {-returncode}")
    root_fatal = [line for line in lines if _is_root_failure(line, name)]
    if root_fatal:
        raise SourceError(f"tar: {root_fatal[0]}")
    if returncode in (0, 1):
        return warnings
    unknown = [line for line in lines if not _WARNING_RE.search(line)]
    if returncode == 2 and lines and not unknown:
        return warnings
    reason = unknown[0] if unknown else f"exit status {returncode}"
    raise SourceError(f"tar failed: {reason}")


def _is_root_failure(line: str, name: str) -> bool:
    prefix = f"{name}: "
    return line.startswith(prefix) and bool(_ROOT_FATAL_RE.fullmatch(line[len(prefix) :]))


# --- size estimate ----------------------------------------------------------------


def estimate_source_size(path: Path, exclude_tag: str) -> int:
    """About how many bytes tar will write for ``path``, without reading any file.

    Walks the tree like tar does (no symbolic link followed, folders holding
    ``exclude_tag`` left out) and adds tar's 512-byte headers, LongLink records
    for long names, padding to 512 bytes, hard links stored once, and the end
    of archive. For an unchanging tree of regular files this is tar's exact
    output size. Sparse files count at their apparent size (an upper bound).
    Blocking (``os.scandir``): run it in a worker thread.
    """
    source = resolve_source(path)
    name = member_name(source)[1]
    walker = _SizeWalker(os.fsencode(exclude_tag))
    if source.is_dir():
        walker.directory(os.fsencode(source), os.fsencode(name))
    else:
        walker.entry(os.fsencode(source), os.fsencode(name), source.lstat())
    content = walker.total + 2 * BLOCK  # end-of-archive marker
    return -(-content // RECORD) * RECORD


@dataclass
class _SizeWalker:
    tag: bytes
    total: int = 0
    _linked: dict[tuple[int, int], int] = field(default_factory=dict)  # inode → name length

    def directory(self, path: bytes, name: bytes) -> None:
        if os.path.lexists(path + b"/" + self.tag):
            return
        try:
            children = list(_scan(path))
        except OSError:
            return  # tar cannot read it either, and says so
        self.total += self._header(name + b"/")
        for child, child_name, child_stat in children:
            member = name + b"/" + child_name
            if stat.S_ISDIR(child_stat.st_mode):
                self.directory(child, member)
            else:
                self.entry(child, member, child_stat)

    def entry(self, path: bytes, name: bytes, info: os.stat_result) -> None:
        mode = info.st_mode
        if stat.S_ISSOCK(mode):
            return  # tar skips sockets
        header = self._header(name)
        if info.st_nlink > 1 and not stat.S_ISDIR(mode):
            inode = (info.st_dev, info.st_ino)
            if inode in self._linked:  # stored as a link to the first name: no data
                self.total += header + self._long_link(self._linked[inode])
                return
            self._linked[inode] = len(name)
        self.total += header
        if stat.S_ISLNK(mode):
            with contextlib.suppress(OSError):  # gone since the listing
                # bytes, not Path: tar measures the target in bytes
                self.total += self._long_link(len(os.readlink(path)))  # noqa: PTH115
        elif stat.S_ISREG(mode):
            self.total += -(-info.st_size // BLOCK) * BLOCK

    @staticmethod
    def _header(name: bytes) -> int:
        return BLOCK + _SizeWalker._long_link(len(name))

    @staticmethod
    def _long_link(length: int) -> int:
        """A ././@LongLink record for a name or link target of ``length`` bytes."""
        if length < NAME_FIELD:
            return 0
        return BLOCK + -(-(length + 1) // BLOCK) * BLOCK


def _scan(path: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    """(path, name, lstat) of each entry; bytes, because tar counts bytes."""
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                yield entry.path, entry.name, entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished since the listing
