"""Private folders and files for the state, and a look at a database file's header.

Modes are set explicitly (``mkdir``/``open`` with a mode, then ``chmod``) rather
than through ``os.umask``: the umask is process-wide, and changing it while
other threads create files (aiosqlite's, anyio's workers) would race.
SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file, so
a 0600 database keeps its companions 0600 too.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from aglacier.errors import StateDamagedError

DIR_MODE = 0o700
FILE_MODE = 0o600

#: Files SQLite keeps beside a database in WAL mode.
COMPANION_SUFFIXES = ("-wal", "-shm")

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100

DAMAGED_HINT = (
    "Move the file aside (keep it: it records uploads that may still be resumable) "
    "and run aglacier again to start a new state."
)


def ensure_private_dir(folder: Path) -> None:
    """Create ``folder`` and any missing parents with mode 0700.

    An existing folder keeps its mode: it may be shared on purpose, and we never
    widen or second-guess permissions we did not set. The files inside are 0600.
    """
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # created meanwhile by another process
            continue
        path.chmod(DIR_MODE)  # the umask may have removed bits we need


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600; fails if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def narrow_modes(path: Path) -> None:
    """Remove group and other bits from a database and its companions (never widen)."""
    for candidate in (path, *(path.with_name(path.name + s) for s in COMPANION_SUFFIXES)):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            candidate.chmod(mode & ~0o077)


def wal_has_frames(path: Path) -> bool:
    """Whether a ``-wal`` file with content sits beside ``path``."""
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class Header:
    """The fields of an SQLite file header we check before letting SQLite near it."""

    page_size: int
    page_count: int | None  # None when the header's count is not trustworthy
    user_version: int
    application_id: int


def read_header(path: Path, *, whole: bool) -> Header | None:
    """Read and sanity-check the header of an existing database file.

    ``whole`` says the main file holds the whole database (no ``-wal`` content),
    so its size must match the header; otherwise a crash in the middle of a
    checkpoint can legitimately leave it short, and SQLite's own check decides.
    Returns None for an empty file (a first open that crashed before writing
    anything). Raises :class:`StateDamagedError` for anything that is not an
    SQLite database: random bytes, a short or truncated file.
    """
    size = path.stat().st_size
    if size == 0:
        return None
    with path.open("rb") as file:
        raw = file.read(_HEADER_SIZE)
    if len(raw) < _HEADER_SIZE or not raw.startswith(_MAGIC):
        raise StateDamagedError(
            f"the state file {path} is not an SQLite database (damaged or not ours)",
            hint=DAMAGED_HINT,
        )
    header = _parse(raw)
    if header.page_size == 0 or (whole and _short(header, size)):
        raise StateDamagedError(
            f"the state file {path} is truncated or damaged ({size} bytes)", hint=DAMAGED_HINT
        )
    return header


def _short(header: Header, size: int) -> bool:
    if size % header.page_size:
        return True
    return header.page_count is not None and size < header.page_count * header.page_size


def _parse(raw: bytes) -> Header:
    (page_size,) = struct.unpack_from(">H", raw, 16)
    if page_size == 1:  # the format's encoding of 65536
        page_size = 65536
    elif page_size < 512 or page_size & (page_size - 1):
        page_size = 0  # not a power of two from 512: damaged
    change_counter, page_count = struct.unpack_from(">II", raw, 24)
    (valid_for,) = struct.unpack_from(">I", raw, 92)
    (user_version,) = struct.unpack_from(">i", raw, 60)
    (application_id,) = struct.unpack_from(">i", raw, 68)
    # The in-header page count is only valid when the change counter matches
    # "version-valid-for" (sqlite.org/fileformat.html, "In-header database size").
    trusted = page_count != 0 and change_counter == valid_for
    return Header(page_size, page_count if trusted else None, user_version, application_id)
