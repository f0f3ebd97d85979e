"""Where restored files go: a private folder first, then into place, never over
existing entries unless asked to, never outside the target folder.

Extraction happens in ``DIR/.aglacier-restore-<pid>-<random>`` (mode 0700, on
DIR's file system, so that moving an entry into place is one ``rename``). Only
after gpg and tar have both succeeded and every member name was checked are the
archive's top-level entries moved into DIR:

- without ``overwrite``, none of them may exist in DIR (checked for all of them
  before the first is moved);
- with ``overwrite``, the archive wins wherever both have an entry: folders are
  merged (existing entries the archive does not have are kept, as ``tar -x``
  keeps them), anything else is replaced; a symbolic link in the way is replaced,
  never followed, so nothing is ever written outside DIR through one.

Every function here blocks (file system calls): run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from aglacier.errors import AglacierError, UsageError

#: Private extraction folders inside the target folder start with this.
TEMP_PREFIX = ".aglacier-restore-"


def make_temp_dir(into: Path) -> Path:
    """A new private folder (0700) inside ``into``, named after this process."""
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=into))


def stale_temp_dirs(into: Path) -> list[Path]:
    """Extraction folders left in ``into`` by restores that were killed (their process is gone)."""
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in into.iterdir():
            pid_text = entry.name.removeprefix(TEMP_PREFIX).partition("-")[0]
            ours = entry.name.startswith(TEMP_PREFIX) and pid_text.isdigit()
            if ours and entry.is_dir() and not entry.is_symlink() and not _alive(int(pid_text)):
                found.append(entry)
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it, read-only folders included; never follows links."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        for folder, _, _ in os.walk(path):  # os.walk does not follow links
            with contextlib.suppress(OSError):
                Path(folder).chmod(0o700)
        shutil.rmtree(path)
    else:
        path.unlink()


def existing_entries(into: Path, names: Iterable[str]) -> list[str]:
    """The ``names`` that already exist in ``into`` (as anything, a dangling link too)."""
    return [name for name in names if _exists(into / name)]


def refuse_existing(into: Path, names: Iterable[str]) -> None:
    """Raise :class:`UsageError` if any of ``names`` exists in ``into``."""
    clash = existing_entries(into, names)
    if clash:
        shown = ", ".join(str(into / name) for name in clash[:3])
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise UsageError(
            f"{shown}{more} already exists: a restore never writes over existing files",
            hint="restore elsewhere with --to DIR, or add --overwrite to replace them",
        )


def place_entries(temp: Path, into: Path, *, overwrite: bool) -> list[str]:
    """Move everything extracted in ``temp`` into ``into``; returns the names moved."""
    names = sorted(entry.name for entry in temp.iterdir())
    if not overwrite:
        refuse_existing(into, names)
    for name in names:
        if overwrite:
            _merge(temp / name, into / name)
        else:
            _move(temp / name, into / name)
    return names


def _merge(source: Path, target: Path) -> None:
    """Put ``source`` at ``target``: merge two real folders, replace anything else."""
    try:
        existing = target.lstat()
    except FileNotFoundError:
        _move(source, target)
        return
    info = source.lstat()
    if stat.S_ISDIR(info.st_mode) and stat.S_ISDIR(existing.st_mode):  # lstat: never a link
        source.chmod(0o700)  # its entries move out, even from a read-only folder
        target.chmod(stat.S_IMODE(existing.st_mode) | 0o700)
        for child in sorted(entry.name for entry in source.iterdir()):
            _merge(source / child, target / child)
        source.rmdir()
        _set_mode_and_times(target, info)  # the archive's, as tar would set them
        return
    if stat.S_ISDIR(existing.st_mode):
        remove_tree(target)
    elif stat.S_ISDIR(info.st_mode):
        target.unlink()  # a file or link where the archive has a folder
    _move(source, target)


def _move(source: Path, target: Path) -> None:
    """``rename``, also for a read-only folder (Linux needs write access to move one)."""
    info = source.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode) or mode & stat.S_IWUSR:
        source.replace(target)  # atomic; replaces a file or link, never follows one
        return
    source.chmod(mode | stat.S_IWUSR)
    source.replace(target)
    _set_mode_and_times(target, info)


def _set_mode_and_times(path: Path, info: os.stat_result) -> None:
    path.chmod(stat.S_IMODE(info.st_mode))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def keep_archive(spool: Path, target: Path) -> None:
    """Move the verified ciphertext to ``target`` (``--archive-only``), copying across disks.

    ``target`` was checked beforehand (it may only exist with ``--overwrite``).
    """
    try:
        spool.replace(target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # not just another file system
            raise AglacierError(f"cannot move the archive to {target}: {exc.strerror}") from None
    partial = target.with_name(f".{target.name}.aglacier-part")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out, spool.open("rb") as source:
            shutil.copyfileobj(source, out, 4 * 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        partial.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise AglacierError(f"cannot write the archive to {target}: {exc.strerror}") from None
    spool.unlink()


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    return True
