"""Concurrent, verified, resumable downloads of an archive into a download spool.

The download spool (``SPOOL_DIR/restore-<retrieval id>.tar.gpg``, 0600) holds the
ciphertext only. ``concurrency`` workers each read one part at a time (memory:
concurrency × part size), hash it in a worker thread, check it (see
:mod:`aglacier.restore.checks`), and only then ``pwrite`` it at its offset and
``fdatasync`` the file; after that a shielded write records the part in
``download_parts``. A part that fails its checks is read again, up to
:data:`MAX_FETCHES` times in all, then the download stops with an
:class:`~aglacier.errors.IntegrityError`. Transient errors (a dropped connection,
a 5xx) are retried by the backend's retry layer.

A download that was stopped (Ctrl-C, ``kill -9``, a power cut) resumes with the
parts that have no row: a row exists only for bytes already synced to disk.
Before decryption the whole file is checked against the catalog; if that fails,
the recorded parts are hashed again, and parts damaged on disk since they were
written are fetched once more.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from aglacier.backends import base
from aglacier.backends.base import Backend
from aglacier.errors import AglacierError, IntegrityError, PlanError
from aglacier.restore.checks import (
    Expected,
    PartDigests,
    damaged_parts,
    expected_parts,
    hash_part,
    part_problem,
    whole_digests,
    whole_problem,
)
from aglacier.restore.tracking import shielded
from aglacier.staging.spool import free_space, prepare_spool_dir
from aglacier.state import Archive, StateStore
from aglacier.units import format_size

#: Reads of one part before a checksum mismatch is final.
MAX_FETCHES = 3

#: ``progress(bytes_done, bytes_total)``, called on the event loop.
Progress = Callable[[int, int], None]
#: ``warn(text)``: a part failed its checks and is read again.
Warn = Callable[[str], None]


def download_path(spool_dir: Path, retrieval_id: int) -> Path:
    """Where the ciphertext of a retrieval is downloaded."""
    return spool_dir / f"restore-{retrieval_id}.tar.gpg"


def part_count(archive: Archive) -> int:
    return math.ceil(archive.size / archive.part_size)


@dataclass
class Download:
    """One archive's download into ``path``, as retrieval ``retrieval_id``."""

    backend: Backend
    store: StateStore
    archive: Archive
    retrieval_id: int
    remote: base.Retrieval
    path: Path
    concurrency: int
    progress: Progress
    warn: Warn

    async def run(self) -> None:
        """Fetch what is missing, then check the whole file; raises IntegrityError."""
        expected = await self._expected()
        await self._fetch_missing(expected)
        whole = await whole_digests(self.path)
        problem = whole_problem(self.archive, whole)
        if problem is None:
            return
        recorded = await self.store.download_parts(self.retrieval_id)
        damaged = await anyio.to_thread.run_sync(damaged_parts, self.path, recorded)
        if damaged:
            self.warn(
                f"{len(damaged)} parts changed on disk since they were downloaded: "
                "fetching them again"
            )
            await shielded(self.store.forget_download_parts, self.retrieval_id, damaged)
            await self._fetch_missing(expected)
            problem = whole_problem(self.archive, await whole_digests(self.path))
        if problem is not None:
            raise IntegrityError(
                f"archive {self.archive.id} as downloaded from {self.archive.destination} is "
                f"not the archive in the catalog: {problem}",
                hint="the copy on the destination (or the catalog entry) is damaged; "
                "back the source up again",
            )

    async def _expected(self) -> dict[int, Expected]:
        if self.archive.run_id is None:
            return {}
        return expected_parts(self.archive, await self.store.parts(self.archive.run_id))

    async def _fetch_missing(self, expected: dict[int, Expected]) -> None:
        done = await self.store.download_parts(self.retrieval_id)
        if done and not await anyio.Path(self.path).exists():
            await shielded(self.store.forget_download_parts, self.retrieval_id)
            done = []
        have = {p.part_number for p in done}
        missing = [n for n in range(part_count(self.archive)) if n not in have]
        done_bytes = sum(p.size for p in done)
        await anyio.to_thread.run_sync(_check_space, self.path, self.archive.size - done_bytes)
        fd = await anyio.to_thread.run_sync(_open_spool, self.path, self.archive.size)
        try:
            pool = _Pool(self, fd, expected, done_bytes)
            await pool.run(missing)
        finally:
            os.close(fd)


@dataclass
class _Pool:
    """The workers of one pass over the missing parts."""

    download: Download
    fd: int
    expected: dict[int, Expected]
    done_bytes: int

    async def run(self, missing: list[int]) -> None:
        send, receive = anyio.create_memory_object_stream[int](math.inf)
        with send:
            for number in missing:
                send.send_nowait(number)
        self.download.progress(self.done_bytes, self.download.archive.size)
        error: list[AglacierError] = []
        async with anyio.create_task_group() as group, receive:
            for _ in range(max(1, min(self.download.concurrency, len(missing)))):
                group.start_soon(self._worker, receive.clone(), group.cancel_scope, error)
        if error:
            raise error[0]  # the first error; the other workers were stopped because of it

    async def _worker(
        self,
        receive: MemoryObjectReceiveStream[int],
        scope: anyio.CancelScope,
        error: list[AglacierError],
    ) -> None:
        async with receive:
            async for number in receive:
                try:
                    await self._fetch(number)
                except AglacierError as exc:
                    error.append(exc)
                    scope.cancel()
                    return

    async def _fetch(self, number: int) -> None:
        d = self.download
        part_size, total = d.archive.part_size, d.archive.size
        offset = number * part_size
        size = min(part_size, total - offset)
        problem = "not read"
        for attempt in range(1, MAX_FETCHES + 1):
            part = await d.backend.read_part(d.remote, number, part_size, total)
            digests, problem = await anyio.to_thread.run_sync(
                self._check_and_write, part, offset, size
            )
            del part
            if digests is not None:
                await shielded(
                    d.store.add_download_part,
                    d.retrieval_id,
                    number,
                    offset=offset,
                    size=size,
                    sha256=digests.sha256,
                    tree_hash=digests.tree_hash,
                )
                self.done_bytes += size
                d.progress(self.done_bytes, total)
                return
            if attempt < MAX_FETCHES:
                d.warn(f"part {number} failed its check ({problem}): reading it again")
        raise IntegrityError(
            f"part {number} of archive {d.archive.id} from {d.archive.destination} failed "
            f"its check {MAX_FETCHES} times: {problem}",
            hint="the copy on the destination is damaged; nothing was decrypted. "
            "Back the source up again",
        )

    def _check_and_write(
        self, part: base.PartData, offset: int, size: int
    ) -> tuple[PartDigests | None, str]:
        """In a worker thread: hash and check the part; if sound, write and sync it."""
        if len(part.data) != size:
            return None, f"{len(part.data)} bytes received, {size} expected"
        digests = hash_part(part.data)
        scheme = self.download.archive.destination.partition("://")[0]
        problem = part_problem(digests, part.checksum, scheme, self.expected.get(part.number))
        if problem is not None:
            return None, problem
        view = memoryview(part.data)
        written = 0
        while written < size:
            written += os.pwrite(self.fd, view[written:], offset + written)
        os.fdatasync(self.fd)
        return digests, ""


def _open_spool(path: Path, size: int) -> int:
    """Open (or create, 0600) the download spool; never longer than the archive."""
    prepare_spool_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PlanError(f"cannot open the download spool {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    if os.fstat(fd).st_size > size:
        os.ftruncate(fd, size)
    return fd


def _check_space(path: Path, needed: int) -> None:
    try:
        free = free_space(path.parent)
    except OSError as exc:
        raise PlanError(f"cannot check free space in {path.parent}: {exc.strerror}") from None
    if free < needed:
        raise PlanError(
            f"not enough space in the spool folder {path.parent} for the download: "
            f"{format_size(free)} free, {format_size(needed)} needed",
            hint="free space there, or set backup.spool_dir to a larger disk",
        )
