"""``stage()``: tar | gpg → spool file, parts handed over as soon as they are on disk.

Threads (none of them the event loop's):

- *runner* (an anyio worker): starts tar, calls python-gnupg's ``encrypt_file``
  and, when it returns, reaps everything and decides how staging ended;
- gpg reads tar's stdout itself (the pipe is its standard input, see
  :meth:`StreamingGPG.feed_from`); python-gnupg's *status reader* reads gpg's
  stderr, and its *data reader* calls :meth:`_Pipeline._on_data` with up to 1 MiB
  of ciphertext at a time, which appends it to the spool, queues it for the
  hasher (a bounded queue: memory stays a few MiB) and feeds the whole-spool
  SHA256 (python-gnupg's *copier* only writes a passphrase, if any);
- the *hasher* feeds :class:`StreamHasher` (tree-hash leaves, part SHA256s) and
  hands each complete part to the event loop;
- a reader of tar's stderr (:class:`TarMessages`), which also reads tar's own
  count of the bytes it wrote, for progress.

Why this shape (1 GiB of random files, 8 MiB parts, on 2 busy cores; numbers in
CPU seconds, which a busy machine distorts less than wall time):

- ``on_data`` writing the spool, not ``output=PATH`` with a thread tailing the
  growing file: both cost the same (7.1 s against 6.7-7.3 s of CPU, 4.3 s against
  3.9-4.5 s of wall time): the page-cache write costs the same whoever makes
  it. Tried again with gpg's stdout on the spool and both hashing threads
  reading it through ``mmap`` (no copy at all in Python): still the same
  (median of 5: 5.89 s against 5.92 s of CPU, 3.49 s against 3.47 s of wall
  time). Here aglacier creates the spool (``O_EXCL``, 0600), sees ``ENOSPC`` as
  an errno rather than in gpg's messages, and knows when a part is on disk
  without polling the file.
- Hashing off the data reader: hashing inside ``on_data`` stalls gpg whenever the
  pipe is full (best of 3: 5.3 s against 4.4 s; typical: 1.5× slower).
- The three SHA256 passes (~2.7 s per GiB here) are split over two threads:
  data reader (whole-spool SHA256) and hasher (leaves and part SHA256s).
- tar's output goes to gpg directly, not through python-gnupg's copier (a read
  and a write of every byte in Python): ~0.5 s less CPU per GiB (``perf record``
  of one ``stage()``, twice each way: 6.6-6.7 s against 6.9-7.6 s in all, the
  Python process's share 3.6 s against 4.1-4.4 s).
- The remaining cost over ``tar | gpg > file`` is that hashing plus gpg's output
  going through Python (gpg → data reader → spool).

Ctrl-C (anyio cancellation) kills tar and gpg (:meth:`_Pipeline.kill`); the runner
then reaps them and joins every thread before the cancellation propagates. The
partial spool file stays for the caller to remove.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import queue
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aglacier.errors import GpgError
from aglacier.staging.gpg import Encryption, StreamingGPG, encrypt_stream
from aglacier.staging.pipes import enlarge_pipe
from aglacier.staging.spool import (
    SpooledPart,
    SpoolFile,
    StreamDigests,
    StreamHasher,
    prepare_spool_dir,
)
from aglacier.staging.tar import (
    TarMessages,
    find_gnu_tar,
    member_name,
    resolve_source,
    spawn_tar,
    tar_command,
    tar_warnings,
)

#: ``progress(bytes_read_from_source, bytes_spooled)``, called on the event loop:
#: tar's output read so far (the plaintext archive) and ciphertext in the spool.
ProgressCallback = Callable[[int, int], None]

_QUEUE_CHUNKS = 4  # MiB-sized chunks between the data reader and the hasher


@dataclass(frozen=True)
class StagingResult:
    """The spooled archive: ``size`` bytes of ciphertext in ``part_count`` parts.

    ``sha256`` and ``tree_hash`` are raw 32-byte digests of the whole spool.
    ``warnings`` are tar's messages about files it could not read fully (the
    run ends with exit code 1, "done with warnings").
    """

    size: int
    sha256: bytes
    tree_hash: bytes
    part_count: int
    warnings: list[str]


async def stage(
    source: Path,
    spool_path: Path,
    *,
    part_size: int,
    encryption: Encryption,
    exclude_tag: str,
    parts: MemoryObjectSendStream[SpooledPart],
    progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
) -> StagingResult:
    """Archive ``source`` with GNU tar, encrypt it with gpg, spool it to ``spool_path``.

    Each part (``part_size`` bytes, the last one shorter) is sent to ``parts`` once
    its bytes are written to the spool; ``parts`` is closed when staging ends, so
    ``async for`` on its receiving end finishes. Parts wait in an unbounded
    buffer when ``parts`` is full: staging never waits for the consumer.
    ``spool_path`` must not exist; its folder is created (0700) if missing; the
    spool is synced to disk before this returns.

    Raises :class:`SourceError` (source missing, tar failed), :class:`GpgError`,
    :class:`PlanError` (spool folder full, spool file exists) or an ``AglacierError``
    when GNU tar is missing. On cancellation tar and gpg are killed and reaped and
    the partial spool is left in place.
    """
    if part_size < 1:
        raise ValueError(f"a part has at least 1 byte, not {part_size}")
    handoff_send, handoff_receive = anyio.create_memory_object_stream[SpooledPart](math.inf)
    token = anyio.lowlevel.current_token()

    def emit(part: SpooledPart) -> None:  # in the hasher thread
        anyio.from_thread.run_sync(handoff_send.send_nowait, part, token=token)

    pipeline = _Pipeline(source, spool_path, part_size, encryption, exclude_tag, emit)
    async with parts, anyio.create_task_group() as group:
        group.start_soon(_forward, handoff_receive, parts)
        try:
            await _run(pipeline, progress, progress_interval)
        finally:
            handoff_send.close()  # _forward delivers what is left, then ends
    # Cancelled while the (shielded) runner finished: say so before any outcome.
    await anyio.lowlevel.checkpoint_if_cancelled()
    result = pipeline.outcome()
    if progress is not None:
        progress(pipeline.source_bytes, pipeline.spooled_bytes)
    return result


async def _forward(
    receive: MemoryObjectReceiveStream[SpooledPart], send: MemoryObjectSendStream[SpooledPart]
) -> None:
    async with receive:
        async for part in receive:
            await send.send(part)


async def _run(pipeline: _Pipeline, progress: ProgressCallback | None, interval: float) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(_kill_on_cancel, pipeline)
        if progress is not None:
            group.start_soon(_report_progress, pipeline, progress, interval)
        # Not abandoned on cancellation: the runner reaps tar and gpg and joins its
        # threads before the cancellation goes on (_kill_on_cancel makes that quick).
        await anyio.to_thread.run_sync(pipeline.run)
        group.cancel_scope.cancel()


async def _kill_on_cancel(pipeline: _Pipeline) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        pipeline.kill()  # a no-op once the pipeline has finished


async def _report_progress(
    pipeline: _Pipeline, progress: ProgressCallback, interval: float
) -> None:
    last = (-1, -1)
    while True:
        await anyio.sleep(interval)
        now = (pipeline.source_bytes, pipeline.spooled_bytes)
        if now != last:
            progress(*now)
            last = now


class _Stopped(Exception):
    """Cancelled before tar started (never seen: the cancellation wins)."""


class _Pipeline:
    """One staging run's processes and threads; :meth:`run` is its blocking body."""

    def __init__(
        self,
        source: Path,
        spool_path: Path,
        part_size: int,
        encryption: Encryption,
        exclude_tag: str,
        emit: Callable[[SpooledPart], None],
    ) -> None:
        self._source = source
        self._spool_path = spool_path
        self._encryption = encryption
        self._exclude_tag = exclude_tag
        self._hasher = StreamHasher(part_size, emit)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(_QUEUE_CHUNKS)
        self._lock = threading.Lock()
        self._tar: subprocess.Popen[bytes] | None = None
        self._gpg: StreamingGPG | None = None
        self._messages: TarMessages | None = None
        self._spool: SpoolFile | None = None
        self._stopping = False  # kill() was called: start nothing more
        self._failure: BaseException | None = None  # the first error, which wins
        self._result: StagingResult | None = None
        self._digests: StreamDigests | None = None
        self._sha256 = hashlib.sha256()  # of the whole spool, in the data reader
        self.spooled_bytes = 0

    @property
    def source_bytes(self) -> int:
        """Bytes of tar's output so far, as tar counts them (exact once it has ended)."""
        return self._messages.written if self._messages is not None else 0

    # --- control, from any thread -------------------------------------------------

    def kill(self) -> None:
        """Stop tar and gpg now (on cancellation or failure); idempotent."""
        with self._lock:
            self._stopping = True
            if self._tar is not None and self._tar.returncode is None:
                self._tar.kill()
            if self._gpg is not None:
                self._gpg.kill()

    def fail(self, error: BaseException) -> None:
        """Record the first error and stop the processes."""
        with self._lock:
            if self._failure is None:
                self._failure = error
        self.kill()

    def outcome(self) -> StagingResult:
        """The result, or the error that ended staging (after :meth:`run`)."""
        if self._failure is not None:
            raise self._failure
        assert self._result is not None
        return self._result

    # --- the runner thread --------------------------------------------------------

    def run(self) -> None:
        """Stage; never raises (the error is kept for :meth:`outcome`)."""
        try:
            self._result = self._stage()
        except Exception as exc:
            self.fail(exc)

    def _stage(self) -> StagingResult:
        tar_binary = find_gnu_tar(os.environ.get("PATH", os.defpath))
        source = resolve_source(self._source)
        gpg = StreamingGPG(self._encryption)  # runs gpg once: fails before tar starts
        gpg.on_data = self._on_data
        warnings = self._tagged_root(source)
        prepare_spool_dir(self._spool_path.parent)
        self._spool = SpoolFile(self._spool_path)
        try:
            returncode, messages = self._stream(tar_binary, source, gpg)
            warnings += tar_warnings(returncode, messages, member_name(source)[1])
            digests = self._digests
            assert digests is not None
            self._spool.sync()
        finally:
            self._spool.close()
        return StagingResult(
            digests.size, self._sha256.digest(), digests.tree_hash, digests.part_count, warnings
        )

    def _stream(self, tar_binary: str, source: Path, gpg: StreamingGPG) -> tuple[int, TarMessages]:
        """Run tar | gpg → spool to the end: tar's exit status and messages.

        Raises our own first failure, else gpg's; tar's status is judged last,
        because tar dies of a broken pipe when gpg or the spool fails first.
        """
        hasher = threading.Thread(target=self._hash_chunks, name="aglacier-hasher")
        hasher.start()
        try:
            tar, messages = self._start_tar(tar_command(tar_binary, source, self._exclude_tag))
            gpg_error: GpgError | None = None
            try:
                gpg_error = self._encrypt(gpg, tar)
            finally:
                self._reap(tar, messages, stop_first=gpg_error is not None)
        finally:
            self._chunks.put(None)
            hasher.join()
        self._check_failure()
        if gpg_error is not None:
            raise gpg_error
        return tar.returncode, messages

    def _start_tar(self, command: list[str]) -> tuple[subprocess.Popen[bytes], TarMessages]:
        with self._lock:
            if self._stopping:
                raise _Stopped
            tar = self._tar = spawn_tar(command)
        assert tar.stdout is not None and tar.stderr is not None
        enlarge_pipe(tar.stdout)
        messages = self._messages = TarMessages(tar.stderr)
        messages.start()
        return tar, messages

    def _encrypt(self, gpg: StreamingGPG, tar: subprocess.Popen[bytes]) -> GpgError | None:
        """Feed tar's output to gpg: gpg's error if it failed."""
        assert tar.stdout is not None
        with self._lock:
            if self._stopping:
                return None  # killed meanwhile: the cancellation or failure says why
            self._gpg = gpg
        gpg.feed_from(tar.stdout)
        try:
            result = encrypt_stream(gpg, self._encryption, io.BytesIO())
        except OSError:  # gpg's start failed, or it took no passphrase
            return gpg.failure()
        if not result.ok or result.returncode != 0:
            return gpg.failure()
        return None

    def _reap(self, tar: subprocess.Popen[bytes], messages: TarMessages, stop_first: bool) -> None:
        """Wait for tar (killed first if gpg stopped early) and its stderr."""
        if stop_first or self._stopping:
            self.kill()  # tar may be blocked on a pipe that nobody reads any more
        tar.wait()
        assert tar.stdout is not None
        tar.stdout.close()
        messages.join()

    def _check_failure(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    # --- gpg's data reader and the hasher -----------------------------------------

    def _on_data(self, data: bytes) -> bool:
        """python-gnupg's data reader hands over ciphertext: spool it, queue it."""
        if data and self._failure is None:
            try:
                assert self._spool is not None
                self._spool.write(data)
            except Exception as exc:
                self.fail(exc)
                return False
            self.spooled_bytes += len(data)
            self._chunks.put(data)
            # Here rather than in the hasher: two threads share the three passes.
            self._sha256.update(data)
        return False  # False: python-gnupg must not keep the data in memory

    def _hash_chunks(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._failure is not None:
                continue  # keep draining, so that the data reader never blocks
            try:
                self._hasher.update(chunk)
            except Exception as exc:
                self.fail(exc)
        if self._failure is None:
            try:
                self._digests = self._hasher.finish()
            except Exception as exc:
                self.fail(exc)

    def _tagged_root(self, source: Path) -> list[str]:
        if source.is_dir() and (source / self._exclude_tag).exists():
            return [f"{source} holds {self._exclude_tag}: the archive is empty"]
        return []
