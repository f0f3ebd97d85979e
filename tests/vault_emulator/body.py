"""Receive a request body into a file while hashing it, with bounded memory.

Parts can be hundreds of MiB, so the body is never held whole: chunks are gathered up to
about 1 MiB on the event loop, then written and hashed (plain SHA256 and tree hash) in a
worker thread, where hashlib releases the GIL.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from .treehash import MIB, TreeHasher

_BATCH = MIB


@dataclass(frozen=True)
class Received:
    """A body stored in ``path``: its length and both checksums, in hex."""

    path: Path
    size: int
    sha256: str
    tree_hash: str


class _Sink:
    """File plus hashers; touched only from worker threads, one call at a time."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("wb")
        self._sha256 = hashlib.sha256()
        self._tree = TreeHasher()
        self.size = 0

    def write(self, chunks: list[bytes]) -> None:
        # One join, so the tree hasher sees ~1 MiB at once and rarely buffers a leaf.
        data = b"".join(chunks)
        self._file.write(data)
        self._sha256.update(data)
        self._tree.update(data)
        self.size += len(data)

    def finish(self) -> tuple[str, str]:
        self._file.close()
        return self._sha256.hexdigest(), self._tree.hexdigest()

    def close(self) -> None:
        self._file.close()


async def receive_body(request: web.Request, path: Path) -> Received:
    """Stream ``request``'s body into ``path``; on any failure the file is removed.

    One batch is written and hashed in a worker thread while the next one is read, so at
    most two batches (~2 MiB) are held.
    """
    sink = await asyncio.to_thread(_Sink, path)
    writing: asyncio.Future[None] | None = None
    try:
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in request.content.iter_any():
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _BATCH:
                if writing is not None:
                    # Shielded: a cancelled request must not abandon a write mid-way.
                    await asyncio.shield(writing)
                writing = asyncio.ensure_future(asyncio.to_thread(sink.write, pending))
                pending, pending_size = [], 0
        if writing is not None:
            await asyncio.shield(writing)
        await asyncio.to_thread(sink.write, pending)
        sha256, tree_hash = await asyncio.to_thread(sink.finish)
    except BaseException:
        if writing is not None:
            # The file must not be closed under a write still running in its thread.
            await asyncio.wait([writing])
        await asyncio.to_thread(_discard, sink, path)
        raise
    return Received(path, sink.size, sha256, tree_hash)


def _discard(sink: _Sink, path: Path) -> None:
    sink.close()
    path.unlink(missing_ok=True)


async def skip_body(request: web.Request, limit: int | None = None) -> int:
    """Read and throw away up to ``limit`` body bytes (all when None); return the count."""
    seen = 0
    while limit is None or seen < limit:
        want = MIB if limit is None else min(MIB, limit - seen)
        chunk = await request.content.read(want)
        if not chunk:
            break
        seen += len(chunk)
    return seen
