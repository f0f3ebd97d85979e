"""From a verified download to files: decrypt and extract, or keep the ciphertext.

Where things go (checked before any retrieval is requested, and again at the end):

- a restore extracts into ``--to DIR`` (default: the current folder) exactly what
  ``tar -x -C DIR`` would, so restoring ``/home/me/photos`` gives ``DIR/photos``;
  an entry the archive would put where something already exists is refused
  unless ``--overwrite`` (see :mod:`aglacier.restore.place`);
- ``--archive-only`` keeps the verified ciphertext as ``--to PATH`` (a file, or a
  folder to put it in; default: ``NAME-YYYYMMDDTHHMMSSZ.tar.gpg`` in the current
  folder), never over an existing file unless ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import anyio

from aglacier.errors import PlanError, UsageError
from aglacier.progress.events import TaskProgress
from aglacier.restore.decrypt import Decryption
from aglacier.restore.extract import Extraction
from aglacier.restore.fetch import Work
from aglacier.restore.place import keep_archive, refuse_existing, remove_tree, stale_temp_dirs
from aglacier.staging.spool import free_space
from aglacier.staging.tar import find_gnu_tar
from aglacier.state import Archive
from aglacier.units import format_size

DECRYPT_PROGRESS_INTERVAL = 0.25  # seconds between two updates of the bar


@dataclass(frozen=True)
class Target:
    """Where a restore goes: a folder to extract into, or a file for the ciphertext."""

    path: Path
    archive_only: bool
    overwrite: bool


def top_level_name(archive: Archive) -> str | None:
    """The archive's top-level entry: the source's name (tar ran in its parent folder)."""
    name = archive.source.name
    return name or None  # the root folder: its entries are the top level


def archive_file_name(archive: Archive) -> str:
    """``photos-20261126T080000Z.tar.gpg``: the source's name and the archive's time."""
    name = (archive.source.name or "root").replace(os.sep, "_")
    return f"{name}-{archive.created_at:%Y%m%dT%H%M%SZ}.tar.gpg"


def plan_target(
    archive: Archive, to: Path | None, *, archive_only: bool, overwrite: bool
) -> Target:
    """Check where the restore goes before anything is requested; blocking (stats)."""
    base = (to or Path.cwd()).absolute()
    if archive_only:
        path = base / archive_file_name(archive) if base.is_dir() else base
        if not path.parent.is_dir():
            raise UsageError(f"{path.parent} is not a folder: --to names where to put the archive")
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise UsageError(f"{path} already exists", hint="add --overwrite to replace it")
        if path.is_dir():
            raise UsageError(f"{path} is a folder")
        return Target(path, True, overwrite)
    if base.exists() and not base.is_dir():
        raise UsageError(f"--to {base}: not a folder")
    name = top_level_name(archive)
    if not overwrite and name is not None:
        refuse_existing(base, [name])
    return Target(base, False, overwrite)


def check_room(target: Target, size: int) -> None:
    """Refuse a restore that cannot fit: plaintext is about as large as the ciphertext."""
    if target.archive_only:
        return
    try:
        free = free_space(target.path)
    except OSError as exc:
        raise PlanError(f"cannot check free space in {target.path}: {exc.strerror}") from None
    if free < size:
        raise PlanError(
            f"not enough space in {target.path}: {format_size(free)} free, "
            f"the restored files need about {format_size(size)}",
            hint="free space there, or restore elsewhere with --to DIR",
        )


async def extract(
    work: Work, archive: Archive, download: Path, target: Target, decryption: Decryption
) -> list[str]:
    """Decrypt and extract ``download`` into ``target.path``; returns the entries placed."""
    tar = await anyio.to_thread.run_sync(find_gnu_tar, os.environ.get("PATH", os.defpath))
    into = target.path
    created = not await anyio.Path(into).exists()
    try:
        await anyio.Path(into).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {into}: {exc.strerror}") from None
    try:
        await anyio.to_thread.run_sync(check_room, target, archive.size)
        await _remove_stale(work, into)
        return await _run(
            work,
            archive,
            Extraction(download, into, decryption, tar=tar, overwrite=target.overwrite),
        )
    except BaseException:
        if created:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.Path(into).rmdir()  # only if still empty
        raise


async def _remove_stale(work: Work, into: Path) -> None:
    for stale in await anyio.to_thread.run_sync(stale_temp_dirs, into):
        await anyio.to_thread.run_sync(remove_tree, stale)
        work.say(f"removed {stale}, left by a restore that was killed", "warning")


async def _run(work: Work, archive: Archive, job: Extraction) -> list[str]:
    async with anyio.create_task_group() as group:
        group.start_soon(_kill_on_cancel, job)
        group.start_soon(_report, work, archive, job)
        # Not abandoned on cancellation: the runner kills gpg and tar, removes the
        # private folder and returns before the cancellation goes on.
        await anyio.to_thread.run_sync(job.run)
        group.cancel_scope.cancel()
    names = job.outcome()
    work.reporter.emit(
        TaskProgress("decrypt", _decrypting(archive), archive.size, archive.size, finished=True)
    )
    return names


async def _kill_on_cancel(job: Extraction) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        job.kill()  # harmless once the job has finished


async def _report(work: Work, archive: Archive, job: Extraction) -> None:
    while True:
        work.reporter.emit(
            TaskProgress("decrypt", _decrypting(archive), job.ciphertext_read, archive.size)
        )
        await anyio.sleep(DECRYPT_PROGRESS_INTERVAL)


def _decrypting(archive: Archive) -> str:
    return f"decrypting and extracting archive {archive.id}"


async def keep(download: Path, target: Target) -> None:
    """``--archive-only``: move the verified ciphertext to ``target.path``."""
    with anyio.CancelScope(shield=True):  # a move or copy is never left half done
        await anyio.to_thread.run_sync(keep_archive, download, target.path)
