"""The spool: a fresh 0600 file of ciphertext, its parts and their hashes.

The spool holds the whole ciphertext until the upload is complete, because gpg's
output cannot be made again byte for byte (DESIGN §1). :class:`SpoolFile` writes
it; :class:`StreamHasher` splits the same bytes into parts as they are written and
hashes them once: per part its SHA256 and tree hash, for the whole archive its
tree hash (its plain SHA256 is computed by the caller in another thread), never
by reading the spool back.

Hashing cost per byte: three SHA256 passes (1 MiB tree-hash leaves, the part's
SHA256, the archive's SHA256), ~2.7 s of CPU per GiB here. When the part size is a
multiple of 1 MiB, as every vault part size is, a part's tree hash is folded from
the same leaf digests as the archive's, so leaves are hashed once; otherwise each
part also gets its own leaves.

Durability: the spool is synced once, when staging ends (:meth:`SpoolFile.sync`),
not per part (write-back is only started along the way, see :class:`SpoolFile`).
A crash during staging discards the spool anyway (DESIGN §2: the ciphertext
stream is gone), and after staging the spool is checked against the recorded
part hashes before anything is uploaded from it.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aglacier.errors import PlanError
from aglacier.treehash import LEAF_SIZE, TreeCombiner, TreeHasher
from aglacier.units import MiB, format_size

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: Free space wanted in the spool folder, as a multiple of the estimated archive
#: size: files grow while they are read, and other programs share the disk.
#: tar adds < 1 % to typical data and gpg a few bytes per MiB.
SPOOL_HEADROOM = 1.1
#: Start writing the spool back to disk after this many new bytes.
FLUSH_EVERY = 64 * MiB
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class SpooledPart:
    """A part of the archive, complete in the spool: bytes ``[offset, offset + size)``.

    ``number`` counts from 0, as everywhere in aglacier (S3's part numbers are one
    more). ``sha256`` and ``tree_hash`` are raw 32-byte digests
    (the plain SHA256 and the Glacier tree hash of the part's bytes).
    """

    number: int
    offset: int
    size: int
    sha256: bytes
    tree_hash: bytes


@dataclass(frozen=True)
class StreamDigests:
    """The whole stream's size, tree hash and part count, from :meth:`StreamHasher.finish`."""

    size: int
    tree_hash: bytes
    part_count: int


class StreamHasher:
    """Split a stream into parts and hash it in one pass: each part's SHA256 and
    tree hash, and the whole stream's tree hash.

    Feed the bytes in order with :meth:`update`; each time ``part_size`` bytes
    are complete, ``emit`` gets their :class:`SpooledPart`. :meth:`finish`
    emits the last, shorter part (or one empty part for empty input). Not
    thread-safe: one thread feeds it. The whole stream's plain SHA256 is left
    to the caller, so that another thread can compute it at the same time.
    """

    def __init__(self, part_size: int, emit: Callable[[SpooledPart], None]) -> None:
        if part_size < 1:
            raise ValueError(f"a part has at least 1 byte, not {part_size}")
        self.part_size = part_size
        self._emit = emit
        self._aligned = part_size % LEAF_SIZE == 0  # part trees from the archive's leaves
        self._tree = TreeCombiner()
        self._leaf = hashlib.sha256()
        self._leaf_fill = 0
        self._part_sha = hashlib.sha256()
        self._part_leaves = TreeCombiner()
        self._part_tree = TreeHasher()  # only for part sizes that are not MiB multiples
        self._part_fill = 0
        self.parts = 0
        self.size = 0

    def update(self, data: ReadableBuffer) -> None:
        """Hash the next bytes, emitting every part they complete."""
        view = memoryview(data).cast("B")
        pos, end = 0, len(view)
        while pos < end:
            take = min(end - pos, LEAF_SIZE - self._leaf_fill, self.part_size - self._part_fill)
            piece = view[pos : pos + take]
            self._part_sha.update(piece)
            if not self._aligned:
                self._part_tree.update(piece)
            self._add_to_leaf(piece)
            pos += take
            self.size += take
            self._part_fill += take
            if self._part_fill == self.part_size:
                self._end_part()

    def finish(self) -> StreamDigests:
        """Emit the last part and return the whole archive's digests."""
        if self._leaf_fill:
            self._end_leaf(self._leaf.digest())
        if self._part_fill or not self.parts:
            self._end_part()
        return StreamDigests(self.size, self._tree.digest(), self.parts)

    def _add_to_leaf(self, piece: memoryview) -> None:
        if not self._leaf_fill and len(piece) == LEAF_SIZE:
            self._end_leaf(hashlib.sha256(piece).digest())  # a whole leaf: no copy
            return
        self._leaf.update(piece)
        self._leaf_fill += len(piece)
        if self._leaf_fill == LEAF_SIZE:
            self._end_leaf(self._leaf.digest())

    def _end_leaf(self, digest: bytes) -> None:
        self._tree.add(digest)
        if self._aligned:
            self._part_leaves.add(digest)
        self._leaf = hashlib.sha256()
        self._leaf_fill = 0

    def _end_part(self) -> None:
        tree = self._part_leaves.digest() if self._aligned else self._part_tree.digest()
        part = SpooledPart(
            number=self.parts,
            offset=self.size - self._part_fill,
            size=self._part_fill,
            sha256=self._part_sha.digest(),
            tree_hash=tree,
        )
        self._part_sha = hashlib.sha256()
        self._part_leaves = TreeCombiner()
        self._part_tree = TreeHasher()
        self._part_fill = 0
        self.parts += 1
        self._emit(part)


# --- the spool file ---------------------------------------------------------------


def prepare_spool_dir(spool_dir: Path) -> None:
    """Create the spool folder, private to this user (0700), if it is missing.

    An existing folder keeps its mode: it may be a shared disk's folder chosen
    by the user, and every spool file in it is 0600 anyway.
    """
    try:
        spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PlanError(f"cannot create the spool folder {spool_dir}: {exc.strerror}") from None


class SpoolFile:
    """A new spool file (``O_EXCL``, mode 0600), written in order from one thread.

    Every :data:`FLUSH_EVERY` bytes a flusher thread asks the kernel to write the
    file out (``fdatasync``), so that the final :meth:`sync` waits for the last
    few MiB rather than the whole archive (0.5 s per GiB here). Call
    :meth:`close` in every case: it stops that thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise PlanError(
                f"the spool file {path} already exists",
                hint="another run is staging it, or it is left over: resume that run",
            ) from None
        except OSError as exc:
            raise PlanError(f"cannot create the spool file {path}: {exc.strerror}") from None
        os.fchmod(self._fd, 0o600)  # O_CREAT's mode is filtered by the umask only
        self.written = 0
        self._flushed = 0  # written when the flusher was last woken
        self._flush = threading.Event()
        self._closing = False
        self._flush_error: OSError | None = None
        self._flusher = threading.Thread(target=self._flush_loop, name="aglacier-spool-flush")
        self._flusher.start()

    def write(self, data: ReadableBuffer) -> None:
        """Append all of ``data``; a full disk raises :class:`PlanError`."""
        view = memoryview(data).cast("B")
        try:
            while view:
                count = os.write(self._fd, view)
                view = view[count:]
                self.written += count
        except OSError as exc:
            raise self._error("write", exc) from None
        if self.written - self._flushed >= FLUSH_EVERY:
            self._flushed = self.written
            self._flush.set()

    def sync(self) -> None:
        """Make the spool and its folder entry durable (before the run is ``staged``)."""
        try:
            if self._flush_error is not None:
                raise self._flush_error  # the kernel reports a write-back error only once
            os.fsync(self._fd)
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise self._error("sync", exc) from None

    def close(self) -> None:
        """Stop the flusher and close the file (idempotent); the file stays on disk."""
        if self._fd < 0:
            return
        self._closing = True
        self._flush.set()
        self._flusher.join()
        os.close(self._fd)
        self._fd = -1

    def _flush_loop(self) -> None:
        while True:
            self._flush.wait()
            self._flush.clear()
            if self._closing:
                return
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._flush_error = self._flush_error or exc

    def _error(self, action: str, exc: OSError) -> PlanError:
        if exc.errno in _FULL:  # write(), or fsync() on filesystems that allocate late
            return spool_full(self.path, self.written)
        return PlanError(f"cannot {action} the spool file {self.path}: {exc.strerror}")


def spool_full(path: Path, written: int) -> PlanError:
    """The error for a spool folder that filled up after ``written`` bytes."""
    free = free_space(path.parent)
    return PlanError(
        f"the spool folder {path.parent} is full: {free} bytes free "
        f"after {format_size(written)} of ciphertext were written",
        hint=f"free space there or set backup.spool_dir to a larger disk; {path} can be deleted",
    )


# --- free space -------------------------------------------------------------------


def free_space(path: Path) -> int:
    """Bytes an unprivileged user can still write on ``path``'s filesystem.

    A missing folder is measured at its nearest existing ancestor.
    """
    for candidate in (path, *path.parents):
        try:
            info = os.statvfs(candidate)
        except FileNotFoundError:
            continue
        return info.f_bavail * info.f_frsize
    raise FileNotFoundError(path)


def check_spool_space(spool_dir: Path, estimate: int, headroom: float = SPOOL_HEADROOM) -> None:
    """Raise :class:`PlanError` unless ``spool_dir`` has ``estimate × headroom`` bytes free.

    ``estimate`` is the archive's estimated size
    (:func:`aglacier.staging.estimate_source_size`).
    """
    needed = math.ceil(estimate * headroom)
    try:
        free = free_space(spool_dir)
    except OSError as exc:
        raise PlanError(f"cannot check free space in {spool_dir}: {exc.strerror}") from None
    if free < needed:
        raise PlanError(
            f"not enough space in the spool folder {spool_dir}: {format_size(free)} free, "
            f"this backup needs about {format_size(needed)} "
            f"(estimated {format_size(estimate)} plus {round((headroom - 1) * 100)} %)",
            hint="free space there or set backup.spool_dir to a larger disk",
        )
