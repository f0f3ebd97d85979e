"""Blocking file work for the local folder: parts written in place, acknowledgements,
durable writes.

Everything here runs in a worker thread (see :mod:`aglacier.backends.local`).
Long loops call :func:`anyio.from_thread.check_cancelled`, so that hashing a
large archive still honours Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from anyio import from_thread

from aglacier.backends.base import ArchiveInfo, ArchiveTotals, CompletePart, PartChecksums
from aglacier.backends.limits import LOCAL_LIMITS
from aglacier.backends.naming import MANIFEST_SUFFIX, manifest_bytes, manifest_document
from aglacier.errors import ChecksumRejectedError, InvalidRequestError
from aglacier.treehash import S3CompositeHasher, combine, composite_checksum
from aglacier.units import MiB

_CHUNK = MiB
_ACK_RE = re.compile(r"part-(\d+)\.sha256")
_HEX_RE = re.compile(r"[0-9a-f]{64}")


# --- what a server rejects before it looks at the bytes ---------------------------


def check_part_shape(part: PartChecksums, body_size: int, part_size: int) -> None:
    """A part's number, place and size against the upload's part size."""
    if body_size != part.size:
        raise InvalidRequestError(f"part {part.number}: {body_size} bytes sent, {part.size} said")
    if not 0 <= part.number < LOCAL_LIMITS.max_parts:
        raise InvalidRequestError(f"part number {part.number} is out of range")
    if part.offset != part.number * part_size:
        raise InvalidRequestError(f"part {part.number} cannot start at byte {part.offset}")
    if part.size > part_size or (part.size == 0 and part.number > 0):
        raise InvalidRequestError(f"part {part.number} has {part.size} bytes (parts: {part_size})")


# --- parts in the assembly file, and their acknowledgements -----------------------


@dataclass(frozen=True)
class Ack:
    """``part-<n>.sha256``: part n's bytes are durable in the assembly file.

    Its content is ``"<hex SHA256> <size>\\n"``, written atomically (and synced)
    only after the bytes were synced; a file that does not parse acknowledges
    nothing.
    """

    number: int
    sha256: str
    size: int

    def to_bytes(self) -> bytes:
        return f"{self.sha256} {self.size}\n".encode()

    @classmethod
    def parse(cls, number: int, data: bytes) -> Ack | None:
        fields = data.decode("ascii", "replace").split()
        if len(fields) != 2 or not _HEX_RE.fullmatch(fields[0]) or not fields[1].isdigit():
            return None
        return cls(number, fields[0], int(fields[1]))


def ack_path(folder: Path, number: int) -> Path:
    return folder / f"part-{number}.sha256"


def read_acks(folder: Path) -> dict[int, Ack]:
    """The acknowledged parts of an upload's folder, by number."""
    acks = {}
    for entry in os.scandir(folder):
        match = _ACK_RE.fullmatch(entry.name)
        if match:
            number = int(match.group(1))
            try:
                ack = Ack.parse(number, Path(entry.path).read_bytes())
            except FileNotFoundError:
                continue  # removed meanwhile: the part is being sent again
            if ack is not None:
                acks[number] = ack
    return acks


def write_part(assembly: Path, offset: int, body: bytes) -> None:
    """Write ``body`` at ``offset`` of the assembly file and make it durable.

    ``fdatasync`` also allocates the blocks for good (ext4 and others allocate
    late), so that the acknowledgement written after it never vouches for bytes
    a power cut could take back.
    """
    fd = os.open(assembly, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(body)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
        os.fdatasync(fd)
    finally:
        os.close(fd)


def check_acks(parts: list[CompletePart], acks: dict[int, Ack]) -> None:
    """Each part of ``complete`` against its acknowledgement: present, same size and SHA256."""
    for part in parts:
        number, claimed = part.checksums.number, part.checksums
        ack = acks.get(number)
        if ack is None:
            raise InvalidRequestError(f"part {number} was never uploaded")
        if ack.size != claimed.size:
            raise InvalidRequestError(
                f"part {number} was stored with {ack.size} bytes, not {claimed.size}"
            )
        if ack.sha256 != claimed.sha256.hex():
            raise ChecksumRejectedError(
                f"part {number}: the stored bytes have SHA256 {ack.sha256}, "
                f"not {claimed.sha256.hex()}"
            )
        if part.etag is not None and part.etag != ack.sha256:
            raise ChecksumRejectedError(f"part {number}: etag {part.etag} is not the stored part's")


def check_tree_hash(parts: list[CompletePart], totals: ArchiveTotals, part_size: int) -> None:
    """The archive's tree hash against its parts' (when part trees combine into it).

    Only the parts' SHA256s are checked against their bytes; this catches totals
    that do not belong to the parts, as a vault would.
    """
    if part_size % MiB or (part_size // MiB) & (part_size // MiB - 1):
        return  # not 1 MiB × 2^n: part trees are not subtrees of the archive's
    combined = combine(p.checksums.tree_hash for p in parts)
    if combined != totals.tree_hash:
        raise ChecksumRejectedError(
            f"the archive's tree hash is {combined.hex()} (from its parts), "
            f"not {totals.tree_hash.hex()}"
        )


def seal(assembly: Path, size: int) -> None:
    """Cut the assembly to ``size`` (parts beyond the last may have been sent) and sync it."""
    with assembly.open("r+b") as f:
        stored = os.fstat(f.fileno()).st_size
        if stored < size:
            raise InvalidRequestError(f"the stored parts have {stored} bytes, not {size}")
        if stored > size:
            f.truncate(size)
        os.fsync(f.fileno())


def stored_composite(path: Path, totals: ArchiveTotals, part_size: int) -> str | None:
    """If ``path`` holds exactly the archive of ``totals``: its S3 composite checksum
    in parts of ``part_size`` (for the manifest); else ``None``."""
    try:
        if path.stat().st_size != totals.size:
            return None
        digest = hashlib.sha256()
        composite = S3CompositeHasher(part_size)
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                from_thread.check_cancelled()
                digest.update(chunk)
                composite.update(chunk)
    except FileNotFoundError:
        return None
    return composite.checksum() if digest.digest() == totals.sha256 else None


# --- manifests and durable writes -----------------------------------------------


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MANIFEST_SUFFIX)


def parts_composite(parts: list[CompletePart]) -> str:
    """The S3 composite checksum of parts whose SHA256 was verified."""
    return composite_checksum(p.checksums.sha256 for p in parts)


def write_manifest(
    root: Path,
    key: str,
    info: ArchiveInfo,
    totals: ArchiveTotals,
    s3_checksum: str,
    *,
    scratch: Path,
) -> None:
    """Write the manifest via a temporary file in ``scratch``, a folder under ``.uploads``
    (a crash must not leave a stray temporary file beside the archives)."""
    document = manifest_document(key=key, info=info, totals=totals, s3_checksum=s3_checksum)
    write_atomically(manifest_path(root / key), manifest_bytes(document), scratch=scratch)


def write_atomically(path: Path, data: bytes, *, scratch: Path | None = None) -> None:
    """Readers see the old file or the whole new one, also after a power cut.

    The temporary file is made in ``scratch`` (same file system) or beside ``path``.
    """
    tmp = (scratch or path.parent) / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a rename, a new file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
