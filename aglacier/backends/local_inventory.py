"""The inventory of a local folder, in blocking code (run in a worker thread).

Every regular file under the folder is looked at, except the top-level
``.uploads`` (unfinished uploads) and file names starting with a dot
(aglacier's temporary files; a folder may start with one: ``~/.config``).
Symbolic links are neither followed nor listed. See
:mod:`aglacier.backends.inventory` for how files are sorted into archives.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from anyio import from_thread

from aglacier.backends.base import Inventory, ListedArchive, SkippedEntry
from aglacier.backends.inventory import (
    ManifestPair,
    in_order,
    listed_archive,
    sort_names,
    too_large,
)
from aglacier.backends.local_store import UPLOADS_DIR
from aglacier.backends.naming import parse_manifest
from aglacier.errors import AccessDeniedError, BackendError, NoSuchDestinationError


def folder_inventory(root: Path) -> Inventory:
    """Every archive in ``root`` with a manifest beside it, and what else is there."""
    if not root.is_dir():
        raise NoSuchDestinationError(
            f"the backup folder {root} does not exist", hint="is the disk mounted?"
        )
    try:
        sizes = _file_sizes(root)
        pairs, skipped = sort_names(sizes)
        archives: list[ListedArchive] = []
        for pair in pairs:
            entry = _entry(root, pair, sizes[pair.manifest_name])
            if isinstance(entry, ListedArchive):
                archives.append(entry)
            else:
                skipped.append(entry)
    except PermissionError as error:
        raise AccessDeniedError(f"{error.filename or root}: permission denied") from error
    except OSError as error:
        raise BackendError(f"{error.filename or root}: {error.strerror or error}") from error
    return Inventory(in_order(archives), skipped)


def _entry(root: Path, pair: ManifestPair, manifest_size: int) -> ListedArchive | SkippedEntry:
    big = too_large(pair, manifest_size)
    if big is not None:
        return big
    try:
        body = (root / pair.manifest_name).read_bytes()
    except FileNotFoundError:
        body = b""  # removed while we listed: not a manifest any more
    return listed_archive(pair, parse_manifest(body))


def _file_sizes(root: Path) -> dict[str, int]:
    """Relative POSIX path → size of every regular file we look at."""
    sizes: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        from_thread.check_cancelled()  # a large folder still honours Ctrl-C
        here = Path(folder)
        if here == root and UPLOADS_DIR in dirs:
            dirs.remove(UPLOADS_DIR)
        for name in files:
            if name.startswith("."):
                continue  # temporary files; archive and manifest names start with a date
            path = here / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed while we listed
            if stat.S_ISREG(info.st_mode):
                sizes[path.relative_to(root).as_posix()] = info.st_size
    return sizes
