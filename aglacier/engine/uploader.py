"""Concurrent part uploads from the spool, each acknowledgement recorded at once.

A fixed number of workers take parts from one stream. Each reads its part
from the spool in a worker thread (memory: concurrency × part size), sends it
with the checksums recorded when it was spooled (the server checks them, so
the spool is not hashed twice), and records the acknowledgement in a shielded
write before taking the next part.

An upload that fails (after the retry layer gave up) does not cancel the
others' staging: the pool stops taking parts and remembers the first error, so
that staging can finish the spool and ``aglacier resume`` can send the rest.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aglacier.backends.base import PartChecksums, Upload
from aglacier.engine.context import Engine, shielded
from aglacier.errors import AglacierError
from aglacier.progress.events import PartUploaded, PartUploading


@dataclass
class UploadPool:
    """Workers that upload the parts sent to :meth:`submit`."""

    engine: Engine
    run_id: int
    upload: Upload
    spool_path: Path
    error: AglacierError | None = None
    uploaded_bytes: int = 0
    _send: MemoryObjectSendStream[PartChecksums] | None = field(default=None, repr=False)

    def start(self, group: TaskGroup) -> None:
        """Start the workers in ``group``; they end once :meth:`close` is called."""
        send, receive = anyio.create_memory_object_stream[PartChecksums](math.inf)
        self._send = send
        with receive:
            for _ in range(max(1, self.engine.concurrency)):
                group.start_soon(self._worker, receive.clone())

    def submit(self, part: PartChecksums) -> None:
        """Queue a part (never blocks); ignored once the pool has stopped on an error."""
        if self._send is None or self.error is not None:
            return
        with contextlib.suppress(anyio.BrokenResourceError):  # every worker stopped
            self._send.send_nowait(part)

    def close(self) -> None:
        """No more parts: workers finish what is queued, then end."""
        if self._send is not None:
            self._send.close()

    async def _worker(self, receive: MemoryObjectReceiveStream[PartChecksums]) -> None:
        async with receive:
            async for part in receive:
                if self.error is not None:
                    return
                try:
                    await self._upload_one(part)
                except AglacierError as exc:
                    if self.error is None:
                        self.error = exc
                    return

    async def _upload_one(self, part: PartChecksums) -> None:
        engine = self.engine
        body = await anyio.to_thread.run_sync(_read_part, self.spool_path, part.offset, part.size)
        engine.reporter.emit(PartUploading(self.run_id, part.number, part.size))
        acknowledged = await engine.backend.upload_part(self.upload, part, body)
        del body
        await shielded(
            engine.store.mark_part_uploaded, self.run_id, part.number, etag=acknowledged.etag
        )
        self.uploaded_bytes += part.size
        engine.reporter.emit(PartUploaded(self.run_id, part.number, part.size))


def _read_part(path: Path, offset: int, size: int) -> bytes:
    """One part of the spool, read with pread (no shared file position between threads)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        done = 0
        while done < size:
            chunk = os.pread(fd, size - done, offset + done)
            if not chunk:
                raise AglacierError(
                    f"the spool {path} is shorter than recorded (part at {offset} has "
                    f"{done} of {size} bytes)",
                    hint="run `aglacier resume` to stage the source again",
                )
            chunks.append(chunk)
            done += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)
