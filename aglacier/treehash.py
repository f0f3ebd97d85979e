"""Glacier SHA256 tree hashes and S3 composite SHA256 checksums.

Pure and synchronous: no event loop, no network. The backup engine calls
:class:`PartHasher` from a worker thread while it spools each part; the
``checksum`` command calls :func:`file_checksums`.

The Glacier tree hash (``x-amz-sha256-tree-hash``): SHA256 of every 1 MiB
leaf, then SHA256 of each pair of concatenated digests, level by level, an odd
last digest carried up unchanged; empty input hashes to ``SHA256(b"")``.
Because the pairing is left-aligned, the tree hash of a file split into parts
of 1 MiB × 2^n is :func:`combine` of the parts' tree hashes.

The S3 composite checksum of a multipart upload with ``SHA256`` checksums is
``base64(SHA256(SHA256(part_1) + … + SHA256(part_N)))-N``: it depends on the
part size, so it only compares with an object uploaded with the same one.

Speed (2 cores with SHA-NI, see DESIGN §6): hashlib releases the GIL on large
buffers, so two threads ``pread``-ing and hashing their own leaves reach about
twice the single-thread rate with a constant 1 MiB buffer per thread.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, TypeVar

from aglacier.errors import SourceError
from aglacier.units import MiB

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrPath

LEAF_SIZE = MiB
DIGEST_SIZE = 32
EMPTY_SHA256 = hashlib.sha256(b"").digest()

# A span handed to one worker is at most this many leaves: big enough that
# task overhead is noise, small enough that two threads finish close together.
_MAX_BLOCK_LEAVES = 32
_READ_SIZE = LEAF_SIZE  # read_at's buffer holds exactly one leaf

_T = TypeVar("_T")
_R = TypeVar("_R")


# --- hex and base64 ----------------------------------------------------------


def to_hex(digest: bytes) -> str:
    """Lowercase hex, as Glacier's ``x-amz-sha256-tree-hash`` and ``sha256sum`` print it."""
    return digest.hex()


def from_hex(text: str) -> bytes:
    """Parse a 64-character SHA256 hex digest; raise ``ValueError`` otherwise."""
    digest = bytes.fromhex(text)
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"{text!r} is not a SHA256 hex digest (64 hex digits)")
    return digest


def to_base64(digest: bytes) -> str:
    """Base64, as S3's ``ChecksumSHA256`` of a part or object carries it."""
    return base64.b64encode(digest).decode("ascii")


# --- tree hash ---------------------------------------------------------------


class TreeCombiner:
    """Fold digests, in order, into their Glacier tree hash in O(log n) memory.

    Works like a binary counter: a subtree merges with its left neighbour as
    soon as both have the same height, so at most one subtree per height is
    kept. Folding the leftovers from the right gives exactly Glacier's
    level-by-level rule with odd digests carried up (both split ``n`` leaves
    into the largest power of two below ``n`` and the rest).
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, digest); heights decrease
        self.count = 0

    def add(self, digest: bytes) -> None:
        """Append the digest of the next leaf (or the next equal-sized subtree)."""
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"a SHA256 digest has {DIGEST_SIZE} bytes, not {len(digest)}")
        height, node = 0, digest
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            node = hashlib.sha256(left + node).digest()
            height += 1
        self._stack.append((height, node))
        self.count += 1

    def digest(self) -> bytes:
        """The root so far; ``SHA256(b"")`` when nothing was added. State is kept."""
        if not self._stack:
            return EMPTY_SHA256
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = hashlib.sha256(left + node).digest()
        return node

    def copy(self) -> TreeCombiner:
        """An independent combiner in the same state."""
        twin = TreeCombiner()
        twin._stack = list(self._stack)
        twin.count = self.count
        return twin


def combine(digests: Iterable[bytes]) -> bytes:
    """The tree hash of the given leaf digests, or of subtree digests.

    Subtrees must all cover the same power-of-two number of MiB except the
    last, which may be smaller: that is what Glacier parts are, so the archive
    tree hash is ``combine(part_tree_hashes)``. No digests: ``SHA256(b"")``.
    """
    tree = TreeCombiner()
    for digest in digests:
        tree.add(digest)
    return tree.digest()


class TreeHasher:
    """Incremental Glacier tree hash of bytes fed in chunks of any size.

    Whole leaves are hashed straight from the caller's buffer (no copy); only a
    leaf that straddles two chunks goes through an open ``sha256`` object.
    """

    def __init__(self) -> None:
        self._tree = TreeCombiner()
        self._leaf = hashlib.sha256()
        self._leaf_fill = 0
        self.size = 0

    def update(self, data: ReadableBuffer) -> None:
        """Hash the next bytes."""
        view = _byte_view(data)
        end = len(view)
        pos = 0
        if self._leaf_fill:
            pos = min(LEAF_SIZE - self._leaf_fill, end)
            self._add_to_leaf(view[:pos])
        while end - pos >= LEAF_SIZE:
            self._tree.add(hashlib.sha256(view[pos : pos + LEAF_SIZE]).digest())
            pos += LEAF_SIZE
        if pos < end:
            self._add_to_leaf(view[pos:])
        self.size += end

    def _add_to_leaf(self, view: memoryview) -> None:
        self._leaf.update(view)
        self._leaf_fill += len(view)
        if self._leaf_fill == LEAF_SIZE:
            self._tree.add(self._leaf.digest())
            self._leaf = hashlib.sha256()
            self._leaf_fill = 0

    def digest(self) -> bytes:
        """The tree hash of everything fed so far (more may follow)."""
        if not self._leaf_fill:
            return self._tree.digest()
        tree = self._tree.copy()
        tree.add(self._leaf.digest())
        return tree.digest()

    def hexdigest(self) -> str:
        """:meth:`digest` in lowercase hex."""
        return to_hex(self.digest())


def tree_hash(data: ReadableBuffer) -> bytes:
    """The tree hash of bytes already in memory."""
    hasher = TreeHasher()
    hasher.update(data)
    return hasher.digest()


class PartHasher:
    """Plain SHA256 and tree hash of one upload part, in one pass over its bytes.

    Meant for the thread that spools a part: feed every chunk as it is written.
    A vault part needs both digests (``x-amz-content-sha256`` and
    ``x-amz-sha256-tree-hash``); an S3 part needs :attr:`sha256` in base64.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._tree = TreeHasher()

    def update(self, data: ReadableBuffer) -> None:
        """Hash the next bytes of the part."""
        view = _byte_view(data)
        self._sha.update(view)
        self._tree.update(view)

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._tree.size

    @property
    def sha256(self) -> bytes:
        """Plain SHA256 of the bytes fed so far."""
        return self._sha.digest()

    @property
    def tree_hash(self) -> bytes:
        """Glacier tree hash of the bytes fed so far."""
        return self._tree.digest()


# --- S3 composite checksum ---------------------------------------------------


def composite_checksum(part_sha256s: Iterable[bytes]) -> str:
    """S3's ``ChecksumSHA256`` of a multipart object from its parts' SHA256 digests."""
    outer = hashlib.sha256()
    count = 0
    for digest in part_sha256s:
        outer.update(digest)
        count += 1
    if count == 0:
        raise ValueError("a multipart upload has at least one part")
    return f"{to_base64(outer.digest())}-{count}"


class S3CompositeHasher:
    """Incremental S3 composite checksum of bytes uploaded in parts of ``part_size``.

    Empty input counts as one empty part (the only way to upload 0 bytes in a
    multipart upload).
    """

    def __init__(self, part_size: int) -> None:
        _check_part_size(part_size)
        self.part_size = part_size
        self._outer = hashlib.sha256()
        self._parts = 0
        self._part = hashlib.sha256()
        self._part_fill = 0

    def update(self, data: ReadableBuffer) -> None:
        """Hash the next bytes."""
        view = _byte_view(data)
        pos = 0
        while pos < len(view):
            take = min(self.part_size - self._part_fill, len(view) - pos)
            self._part.update(view[pos : pos + take])
            self._part_fill += take
            pos += take
            if self._part_fill == self.part_size:
                self._outer.update(self._part.digest())
                self._parts += 1
                self._part = hashlib.sha256()
                self._part_fill = 0

    def checksum(self) -> str:
        """``base64-N`` for everything fed so far (more may follow)."""
        outer = self._outer.copy()
        parts = self._parts
        if self._part_fill or parts == 0:
            outer.update(self._part.digest())
            parts += 1
        return f"{to_base64(outer.digest())}-{parts}"


def _check_part_size(part_size: int) -> None:
    if part_size < 1:
        raise ValueError(f"a part size is at least 1 byte, not {part_size}")


# --- files and streams -------------------------------------------------------


@dataclass(frozen=True)
class Checksums:
    """What :func:`file_checksums` and :func:`stream_checksums` found."""

    tree_hash: bytes
    s3_checksum: str | None  # only when a part size was given
    size: int


def file_checksums(
    path: StrPath, *, s3_part_size: int | None = None, threads: int = 2
) -> Checksums:
    """Tree hash (and S3 composite checksum) of a file, using ``threads`` cores.

    A regular file is read with ``pread`` by every thread into its own reused
    1 MiB buffer: constant memory, whatever the size. Its size is taken when it
    is opened; a file that shrinks meanwhile raises :class:`SourceError`. With
    ``s3_part_size`` the file is read twice (once per kind of checksum), which
    the page cache usually absorbs. A pipe or device is read once, in order.
    Raises ``OSError`` (``IsADirectoryError`` for a directory).
    """
    _check_threads(threads)
    if s3_part_size is not None:
        _check_part_size(s3_part_size)
    with _open_source(path) as source:
        if source.size is None:
            return stream_checksums(source.stream(), s3_part_size=s3_part_size)
        tree = _pread_tree_hash(source, threads)
        s3 = None if s3_part_size is None else _pread_s3_checksum(source, s3_part_size, threads)
        return Checksums(tree, s3, source.size)


def file_tree_hash(path: StrPath, *, threads: int = 2) -> bytes:
    """Glacier tree hash of a file, in parallel and in constant memory."""
    return file_checksums(path, threads=threads).tree_hash


def s3_composite_checksum(source: StrPath | IO[bytes], part_size: int, *, threads: int = 2) -> str:
    """S3 ``ChecksumSHA256`` (``base64-N``) of a file or stream uploaded in ``part_size`` parts.

    A path is hashed part-parallel with ``pread``; a stream (standard input) is
    read once, in order, through one reused buffer.
    """
    _check_part_size(part_size)
    if not isinstance(source, str | os.PathLike):
        hasher = S3CompositeHasher(part_size)
        for chunk in _read_chunks(source):
            hasher.update(chunk)
        return hasher.checksum()
    _check_threads(threads)
    with _open_source(source) as opened:
        if opened.size is None:
            return s3_composite_checksum(opened.stream(), part_size)
        return _pread_s3_checksum(opened, part_size, threads)


def stream_checksums(stream: IO[bytes], *, s3_part_size: int | None = None) -> Checksums:
    """Tree hash (and S3 composite checksum) of a stream read once to its end.

    For standard input and pipes, where ``pread`` is impossible: one reused
    1 MiB buffer, sequential hashing.
    """
    tree = TreeHasher()
    s3 = None if s3_part_size is None else S3CompositeHasher(s3_part_size)
    for chunk in _read_chunks(stream):
        tree.update(chunk)
        if s3 is not None:
            s3.update(chunk)
    return Checksums(tree.digest(), None if s3 is None else s3.checksum(), tree.size)


def stream_tree_hash(stream: IO[bytes]) -> bytes:
    """Glacier tree hash of a stream read once to its end."""
    return stream_checksums(stream).tree_hash


def _read_chunks(stream: IO[bytes]) -> Iterator[memoryview]:
    """Views of one reused buffer, each valid until the next one is asked for."""
    buffer = bytearray(_READ_SIZE)
    view = memoryview(buffer)
    readinto = getattr(stream, "readinto", None)
    while True:
        if readinto is not None:
            count = readinto(buffer)
            chunk = view[: count or 0]
        else:  # a plain IO[bytes] without readinto: one copy per chunk
            chunk = memoryview(stream.read(_READ_SIZE))
        if not chunk:
            return
        yield chunk


# --- parallel pread ----------------------------------------------------------


@dataclass
class _Source:
    """An open file: its descriptor, its size if regular, one buffer per thread."""

    fd: int
    path: str
    size: int | None
    _local: threading.local = field(default_factory=threading.local)

    def stream(self) -> IO[bytes]:
        return io.FileIO(self.fd, closefd=False)

    def read_at(self, offset: int, count: int) -> memoryview:
        """Exactly ``count`` bytes at ``offset``, in this thread's reused buffer."""
        buffer: memoryview | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = memoryview(bytearray(_READ_SIZE))
            self._local.buffer = buffer
        got = 0
        while got < count:
            n = os.preadv(self.fd, [buffer[got:count]], offset + got)
            if n == 0:
                raise SourceError(
                    f"{self.path}: file shrank while being read "
                    f"(it had {self.size} bytes when opened)"
                )
            got += n
        return buffer[:count]


@contextmanager
def _open_source(path: StrPath) -> Iterator[_Source]:
    """Open a path for hashing; reject a directory before reading it."""
    name = os.fspath(path)
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        if size and hasattr(os, "posix_fadvise"):
            # A larger read-ahead window when the file is not in the page cache.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        yield _Source(fd, name, size)
    finally:
        os.close(fd)


def _pread_tree_hash(source: _Source, threads: int) -> bytes:
    """Split into aligned blocks of 2^k leaves, hash blocks in parallel, combine in order."""
    assert source.size is not None
    block = _block_leaves(_ceil_div(source.size, LEAF_SIZE), threads) * LEAF_SIZE
    spans = _spans(source.size, block)

    def block_tree_hash(span: tuple[int, int]) -> bytes:
        tree = TreeCombiner()
        for offset in range(span[0], span[1], LEAF_SIZE):
            leaf = source.read_at(offset, min(LEAF_SIZE, span[1] - offset))
            tree.add(hashlib.sha256(leaf).digest())
        return tree.digest()

    return combine(_map_ordered(block_tree_hash, spans, threads))


def _pread_s3_checksum(source: _Source, part_size: int, threads: int) -> str:
    """Hash whole parts in parallel (a part's SHA256 is inherently sequential)."""
    assert source.size is not None
    spans = _spans(source.size, part_size) if source.size else iter([(0, 0)])

    def part_sha256(span: tuple[int, int]) -> bytes:
        sha = hashlib.sha256()
        for offset in range(span[0], span[1], _READ_SIZE):
            sha.update(source.read_at(offset, min(_READ_SIZE, span[1] - offset)))
        return sha.digest()

    return composite_checksum(_map_ordered(part_sha256, spans, threads))


def _map_ordered(func: Callable[[_T], _R], items: Iterable[_T], threads: int) -> Iterator[_R]:
    """``map`` over ``threads`` worker threads, results in order.

    At most two tasks per thread are in flight, so memory does not grow with
    the input; when a task fails, the queued ones are cancelled.
    """
    if threads == 1:
        yield from map(func, items)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="treehash") as pool:
        window: deque[Future[_R]] = deque()
        try:
            for item in items:
                window.append(pool.submit(func, item))
                if len(window) >= 2 * threads:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


def _block_leaves(leaves: int, threads: int) -> int:
    """A power of two giving each thread about four blocks, capped."""
    target = max(1, leaves // (4 * threads))
    return min(_MAX_BLOCK_LEAVES, 1 << (target.bit_length() - 1))


def _spans(size: int, step: int) -> Iterator[tuple[int, int]]:
    return ((start, min(start + step, size)) for start in range(0, size, step))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_threads(threads: int) -> None:
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")


def _byte_view(data: ReadableBuffer) -> memoryview:
    """A flat byte view of any buffer (``bytes``, ``bytearray``, ``mmap``, arrays)."""
    return memoryview(data).cast("B")
