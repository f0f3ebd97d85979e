"""Blocking file work for the local folder: checked parts, assembly, durable writes.

Everything here runs in a worker thread (see :mod:`aglacier.backends.local`).
Long loops call :func:`anyio.from_thread.check_cancelled`, so that copying or
hashing a large archive still honours Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from anyio import from_thread

from aglacier.backends.base import ArchiveInfo, ArchiveTotals, CompletePart, PartChecksums
from aglacier.backends.limits import LOCAL_LIMITS
from aglacier.backends.naming import MANIFEST_SUFFIX, manifest_bytes, manifest_document
from aglacier.errors import ChecksumRejectedError, InvalidRequestError
from aglacier.treehash import S3CompositeHasher, TreeHasher, composite_checksum
from aglacier.units import MiB

if TYPE_CHECKING:
    from hashlib import _Hash

_CHUNK = MiB  # also the tree-hash leaf, so whole leaves are hashed without copying
_PART_RE = re.compile(r"part-(\d+)")


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


def part_files(folder: Path) -> dict[int, Path]:
    """The part files in an upload's folder, by number (acknowledged or not)."""
    files = {}
    for entry in os.scandir(folder):
        match = _PART_RE.fullmatch(entry.name)
        if match:
            files[int(match.group(1))] = Path(entry.path)
    return files


# --- assembling and verifying ----------------------------------------------------


def assemble(
    folder: Path, parts: list[CompletePart], totals: ArchiveTotals, out_path: Path
) -> None:
    """Copy the parts into ``out_path`` (fsynced), verifying every checksum on the way."""
    whole = hashlib.sha256()
    tree = TreeHasher()
    try:
        with out_path.open("wb") as out:
            for part in parts:
                digest = _copy_part(folder, part, out, whole, tree)
                _check_part_digest(part, digest)
            out.flush()
            os.fsync(out.fileno())
        _check_totals(totals, out_path.stat().st_size, whole.digest(), tree.digest())
    except BaseException:
        out_path.unlink(missing_ok=True)  # give the space back (the disk may be full)
        raise


def _copy_part(
    folder: Path, part: CompletePart, out: BinaryIO, whole: _Hash, tree: TreeHasher
) -> bytes:
    """Append one part to ``out``, feeding the archive's hashes; the part's SHA256."""
    number = part.checksums.number
    path = folder / f"part-{number}"
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size != part.checksums.size:
                raise InvalidRequestError(
                    f"part {number} on disk does not have {part.checksums.size} bytes"
                )
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                from_thread.check_cancelled()  # a long copy still honours Ctrl-C
                digest.update(chunk)
                whole.update(chunk)
                tree.update(chunk)
                out.write(chunk)
    except FileNotFoundError:
        raise InvalidRequestError(f"part {number} was never uploaded") from None
    return digest.digest()


def _check_part_digest(part: CompletePart, digest: bytes) -> None:
    number = part.checksums.number
    if digest != part.checksums.sha256:
        raise ChecksumRejectedError(
            f"part {number}: the stored bytes have SHA256 {digest.hex()}, "
            f"not {part.checksums.sha256.hex()}"
        )
    if part.etag is not None and part.etag != digest.hex():
        raise ChecksumRejectedError(f"part {number}: etag {part.etag} is not the stored part's")


def _check_totals(totals: ArchiveTotals, size: int, sha256: bytes, tree_hash: bytes) -> None:
    if size != totals.size:
        raise InvalidRequestError(f"the archive has {size} bytes, not {totals.size}")
    if sha256 != totals.sha256:
        raise ChecksumRejectedError(
            f"the archive's SHA256 is {sha256.hex()}, not {totals.sha256.hex()}"
        )
    if tree_hash != totals.tree_hash:
        raise ChecksumRejectedError(
            f"the archive's tree hash is {tree_hash.hex()}, not {totals.tree_hash.hex()}"
        )


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
