"""A local folder as a destination (``file:///path``), with the services' semantics.

The folder behaves like a vault or a bucket so that the engine, its resume logic
and the conformance suite treat it like any other destination::

    root/
      .uploads/<upload id>/upload.json       an unfinished upload (its ArchiveInfo)
      .uploads/<upload id>/part-<n>          part n (0-based), written atomically
      .uploads/<upload id>/part-<n>.sha256   its hex SHA256: written last, it is the ack
      <host>/<source>/<UTC time>.tar.gpg     a finished archive
      <host>/<source>/<UTC time>.tar.gpg.manifest.json

Like a server that checks, ``upload_part`` rejects a body whose SHA256 is not
the one given and ``complete`` re-reads every part and checks each part's
SHA256, the archive's SHA256, tree hash and size before the archive appears.
The archive appears atomically (assembled under ``.uploads``, fsynced, renamed),
so a crash leaves either no archive or the whole one.

Disk space: ``complete`` copies the parts into the archive and removes them only
afterwards, so for a while the archive takes twice its size on this disk.

Every file operation runs in a worker thread; the event loop never blocks.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ParamSpec, TypeVar

from anyio import from_thread, to_thread

from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    CompletePart,
    PartChecksums,
    PartData,
    PendingUpload,
    Retrieval,
    RetrievalState,
    StoredArchive,
    Tier,
    Upload,
    UploadedPart,
)
from aglacier.backends.limits import LOCAL_LIMITS, BackendLimits
from aglacier.errors import (
    AccessDeniedError,
    BackendError,
    ChecksumRejectedError,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    TransientBackendError,
    UploadNotFoundError,
)
from aglacier.treehash import TreeHasher
from aglacier.units import MiB

if TYPE_CHECKING:
    from hashlib import _Hash

UPLOADS_DIR = ".uploads"
ARCHIVE_SUFFIX = ".tar.gpg"
MANIFEST_SUFFIX = ".manifest.json"
#: Version of the manifest's JSON layout (the S3 backend's manifest has the same fields).
MANIFEST_FORMAT = 1
#: A disk has no request limit, but more writers than this only add seeks.
DEFAULT_MAX_CONNECTIONS = 8

_INFO_FILE = "upload.json"
_ASSEMBLY_FILE = "archive.tmp"
_CHUNK = MiB  # also the tree-hash leaf, so whole leaves are hashed without copying
_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PART_RE = re.compile(r"part-(\d+)")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 100

P = ParamSpec("P")
T = TypeVar("T")


class LocalBackend:
    """A folder on a local or mounted disk, used like a vault or bucket.

    ``check`` creates ``root`` when its parent exists (so that the quick start's
    default folder works without a ``mkdir``) but never creates the parent: a
    missing parent usually means a disk that is not mounted, and writing a backup
    onto the system disk in its place would be worse than failing.
    """

    def __init__(self, root: Path, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._store = _FolderStore(root.absolute())
        self._max_connections = max_connections

    @property
    def url(self) -> str:
        return self._store.root.as_uri()

    @property
    def root(self) -> Path:
        """The folder, as an absolute path."""
        return self._store.root

    @property
    def limits(self) -> BackendLimits:
        return LOCAL_LIMITS

    @property
    def max_connections(self) -> int:
        return self._max_connections

    async def check(self) -> None:
        """Create ``root`` if only it is missing; fail if its parent is missing too."""
        await to_thread.run_sync(self._store.check)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        """Create the staging folder; the upload id is random and URL-safe."""
        return await to_thread.run_sync(self._store.start_upload, info)

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        """Store the part atomically after checking ``body`` against ``part.sha256``."""
        digest = await to_thread.run_sync(self._store.write_part, upload.upload_id, part, body)
        return UploadedPart(part.number, part.size, etag=digest, checksum=digest)

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        """The acknowledged parts; ``checksum`` and ``etag`` are the hex SHA256."""
        return await to_thread.run_sync(self._store.list_parts, upload.upload_id)

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        """Verify every part and the totals, then make the archive appear atomically."""
        return await to_thread.run_sync(
            self._store.complete, upload.upload_id, info, list(parts), totals
        )

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        """The archive if it is in place with the right size and SHA256, else ``None``.

        A crash after the archive appeared but before the tidying up finished is
        finished here: the manifest is written if missing, the staging folder removed.
        """
        return await to_thread.run_sync(self._store.find_completed, upload, info, totals)

    async def abort(self, upload: Upload) -> None:
        """Remove the staging folder and its parts."""
        await to_thread.run_sync(self._store.abort, upload.upload_id)

    async def list_pending(self) -> list[PendingUpload]:
        """The staging folders, oldest first."""
        return await to_thread.run_sync(self._store.list_pending)

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        """A local archive is readable at once: the retrieval is ready immediately."""
        await to_thread.run_sync(self._store.archive_path, archive_id)
        return Retrieval(archive_id, tier, RetrievalState.READY, detail="a local file")

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        """Ready while the archive file exists."""
        await to_thread.run_sync(self._store.archive_path, retrieval.archive_id)
        return retrieval

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        """Read one part of the archive file; ``checksum`` is its hex SHA256."""
        data, checksum = await to_thread.run_sync(
            self._store.read_part, retrieval.archive_id, number, part_size, archive_size
        )
        return PartData(number, data, checksum)

    async def aclose(self) -> None:
        """Nothing to release."""


# --- the synchronous side: everything below runs in worker threads -------------


def _os_errors(func: Callable[P, T]) -> Callable[P, T]:
    """Turn the ``OSError`` a method did not handle into a backend error."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except OSError as error:
            raise _backend_error(error) from error

    return wrapper


def _backend_error(error: OSError) -> BackendError:
    where = error.filename or "the backup folder"
    if isinstance(error, PermissionError):
        return AccessDeniedError(f"{where}: permission denied")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        # Transient: once space is freed, `aglacier resume` carries on.
        return TransientBackendError(
            f"{where}: no space left on the device",
            hint="free some space, then run `aglacier resume`",
        )
    return BackendError(f"{where}: {error.strerror or error}")


@dataclass(frozen=True)
class _UploadRecord:
    """``upload.json``: what the staging folder is for."""

    upload_id: str
    key: str
    initiated: datetime
    info: ArchiveInfo

    def to_json(self) -> bytes:
        info = self.info
        record = {
            "upload_id": self.upload_id,
            "key": self.key,
            "initiated": self.initiated.isoformat(),
            "source": info.source,
            "host": info.host,
            "created_at": info.created_at.isoformat(),
            "part_size": info.part_size,
            "aglacier_version": info.aglacier_version,
        }
        return json.dumps(record, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _UploadRecord:
        raw = json.loads(data)
        info = ArchiveInfo(
            source=raw["source"],
            host=raw["host"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            part_size=raw["part_size"],
            aglacier_version=raw["aglacier_version"],
        )
        initiated = datetime.fromisoformat(raw["initiated"])
        return cls(raw["upload_id"], raw["key"], initiated, info)


class _FolderStore:
    """The folder layout and its invariants, in blocking code."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / UPLOADS_DIR

    @_os_errors
    def check(self) -> None:
        if self.root.is_dir():
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise AccessDeniedError(f"{self.root}: cannot write there")
            self._sweep()
            return
        if self.root.exists():
            raise NoSuchDestinationError(f"{self.root} is not a folder")
        if not self.root.parent.is_dir():
            raise NoSuchDestinationError(
                f"{self.root} does not exist, nor does its parent folder",
                hint="create it with `mkdir -p`, or mount the disk it is on",
            )
        self.root.mkdir(exist_ok=True)
        _fsync_dir(self.root.parent)

    @_os_errors
    def start_upload(self, info: ArchiveInfo) -> Upload:
        problem = LOCAL_LIMITS.part_size_problem(info.part_size)
        if problem is not None:
            raise InvalidRequestError(f"{info.part_size} bytes: {problem}")
        self._require_root()
        self.uploads.mkdir(exist_ok=True)
        upload_id = secrets.token_urlsafe(18)
        record = _UploadRecord(upload_id, self._free_key(info), datetime.now(UTC), info)
        # Fill a hidden folder, then rename it: an upload is listed whole or not at all.
        building = self.uploads / f".{upload_id}.new"
        building.mkdir()
        _write_atomically(building / _INFO_FILE, record.to_json())
        building.rename(self.uploads / upload_id)
        _fsync_dir(self.uploads)
        return Upload(upload_id, record.key)

    @_os_errors
    def write_part(self, upload_id: str, part: PartChecksums, body: bytes) -> str:
        folder = self._upload_dir(upload_id)
        record = self._load_record(folder)
        _check_part_shape(part, len(body), record.info.part_size)
        digest = hashlib.sha256(body).digest()
        if digest != part.sha256:
            raise ChecksumRejectedError(
                f"part {part.number}: the body's SHA256 is {digest.hex()}, "
                f"not {part.sha256.hex()} as sent"
            )
        try:
            # Part first, acknowledgement second: a crash between them leaves a part
            # that list_parts ignores, never an acknowledgement of other bytes.
            _write_atomically(folder / f"part-{part.number}", body)
            _write_atomically(folder / f"part-{part.number}.sha256", digest.hex().encode())
        except FileNotFoundError:
            raise UploadNotFoundError(f"upload {upload_id} was aborted") from None
        return digest.hex()

    @_os_errors
    def list_parts(self, upload_id: str) -> list[UploadedPart]:
        folder = self._upload_dir(upload_id)
        self._load_record(folder)
        parts = []
        for number, path in sorted(_part_files(folder).items()):
            try:
                digest = path.with_name(f"{path.name}.sha256").read_text().strip()
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # never acknowledged
            parts.append(UploadedPart(number, size, etag=digest, checksum=digest))
        return parts

    @_os_errors
    def complete(
        self,
        upload_id: str,
        info: ArchiveInfo,
        parts: list[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        folder = self._upload_dir(upload_id)
        record = self._load_record(folder)
        if info.part_size != record.info.part_size:
            raise InvalidRequestError(
                f"upload {upload_id} was started with parts of {record.info.part_size} "
                f"bytes, not {info.part_size}"
            )
        _check_part_list(parts, totals, info.part_size)
        assembled = folder / _ASSEMBLY_FILE
        _assemble(folder, parts, totals, assembled)
        target = self.root / record.key
        if target.exists():
            self._refuse_overwrite(target, totals)
            assembled.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            assembled.replace(target)  # the commit point
            self._fsync_dirs_up_to_root(target.parent)
        _write_manifest(self.root, record.key, info, totals, scratch=folder)
        self._remove_upload_dir(folder)
        return self._stored(record.key, totals.size)

    @_os_errors
    def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        self._require_root()
        key = upload.key or self._key_of(upload.upload_id)
        if key is None or not self._is_archive_name(key):
            return None
        target = self.root / key
        if not _same_archive(target, totals):
            return None
        folder = self.uploads / upload.upload_id
        leftover = _ID_RE.fullmatch(upload.upload_id) is not None and folder.is_dir()
        if not _manifest_path(target).exists():
            self.uploads.mkdir(exist_ok=True)
            scratch = folder if leftover else self.uploads
            _write_manifest(self.root, key, info, totals, scratch=scratch)
        if leftover:
            self._remove_upload_dir(folder)
        return self._stored(key, totals.size)

    @_os_errors
    def abort(self, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)
        self._load_record(folder)
        self._remove_upload_dir(folder)

    @_os_errors
    def list_pending(self) -> list[PendingUpload]:
        self._require_root()
        pending = [
            PendingUpload(record.upload_id, record.key, record.initiated, record.key)
            for record in self._records()
        ]
        return sorted(pending, key=lambda p: (p.initiated, p.upload_id))

    @_os_errors
    def archive_path(self, archive_id: str) -> Path:
        """The archive's file; an id that names no archive inside root is unknown."""
        self._require_root()
        path = self.root / archive_id
        if not (self._is_archive_name(archive_id) and path.is_file()):
            raise NoSuchArchiveError(f"there is no archive {archive_id!r} in {self.root}")
        return path

    @_os_errors
    def read_part(
        self, archive_id: str, number: int, part_size: int, archive_size: int
    ) -> tuple[bytes, str]:
        path = self.archive_path(archive_id)
        offset = number * part_size
        if part_size <= 0 or number < 0 or (offset >= archive_size and archive_size > 0):
            raise InvalidRequestError(
                f"there is no part {number} of {part_size} bytes in {archive_size} bytes"
            )
        length = min(part_size, archive_size - offset)
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise InvalidRequestError(f"{archive_id} is shorter than {archive_size} bytes")
        return data, hashlib.sha256(data).hexdigest()

    # --- helpers ---------------------------------------------------------------

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise NoSuchDestinationError(
                f"the backup folder {self.root} does not exist",
                hint="is the disk mounted?",
            )

    def _is_archive_name(self, key: str) -> bool:
        """Whether ``key`` may name an archive: inside root, outside ``.uploads``."""
        resolved = (self.root / key).resolve()
        root = self.root.resolve()
        inside = (
            resolved.is_relative_to(root) and UPLOADS_DIR not in resolved.parts[len(root.parts) :]
        )
        return inside and key.endswith(ARCHIVE_SUFFIX)

    def _upload_dir(self, upload_id: str) -> Path:
        if not _ID_RE.fullmatch(upload_id):
            raise UploadNotFoundError(f"{upload_id!r} is not an upload id of this folder")
        return self.uploads / upload_id

    def _load_record(self, folder: Path) -> _UploadRecord:
        try:
            return _UploadRecord.from_json((folder / _INFO_FILE).read_bytes())
        except FileNotFoundError:
            self._require_root()
            raise UploadNotFoundError(f"there is no upload {folder.name} in {self.root}") from None

    def _records(self) -> Iterator[_UploadRecord]:
        if not self.uploads.is_dir():
            return
        for entry in os.scandir(self.uploads):
            if _ID_RE.fullmatch(entry.name):
                try:
                    yield self._load_record(Path(entry.path))
                except UploadNotFoundError:
                    continue  # aborted while we listed

    def _key_of(self, upload_id: str) -> str | None:
        if not _ID_RE.fullmatch(upload_id):
            return None
        try:
            return self._load_record(self.uploads / upload_id).key
        except UploadNotFoundError:
            return None

    def _free_key(self, info: ArchiveInfo) -> str:
        """The archive's name, with ``-2``, ``-3``… if another archive or upload has it."""
        base = archive_key(info)
        taken = {record.key for record in self._records()}
        stem = base.removesuffix(ARCHIVE_SUFFIX)
        key, n = base, 1
        while key in taken or (self.root / key).exists():
            n += 1
            key = f"{stem}-{n}{ARCHIVE_SUFFIX}"
        return key

    def _refuse_overwrite(self, target: Path, totals: ArchiveTotals) -> None:
        # Only a repeated complete of this very upload may find its archive there.
        if not _same_archive(target, totals):
            raise InvalidRequestError(f"{target} exists and holds another archive")

    def _remove_upload_dir(self, folder: Path) -> None:
        # Rename first so that the upload disappears at once, even if rmtree is cut short.
        doomed = folder.with_name(f".{folder.name}.deleting")
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            raise UploadNotFoundError(f"there is no upload {folder.name}") from None
        _fsync_dir(folder.parent)
        shutil.rmtree(doomed, ignore_errors=True)

    def _sweep(self) -> None:
        """Finish removals a crash cut short (an upload being removed is renamed first)."""
        if self.uploads.is_dir():
            for entry in os.scandir(self.uploads):
                if entry.name.endswith(".deleting"):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def _fsync_dirs_up_to_root(self, folder: Path) -> None:
        """Make the rename and any folders just created survive a power cut."""
        for directory in (folder, *folder.parents):
            _fsync_dir(directory)
            if directory == self.root:
                break

    def _stored(self, key: str, size: int) -> StoredArchive:
        return StoredArchive(archive_id=key, location=(self.root / key).as_uri(), size=size)


def archive_key(info: ArchiveInfo) -> str:
    """``<host>/<source made safe>/<UTC time>.tar.gpg``, e.g.
    ``laptop/home_alice_Documents/20261126T080600Z.tar.gpg``."""
    stamp = _utc(info.created_at).strftime("%Y%m%dT%H%M%SZ")  # as the S3 backend's keys
    host = safe_name(info.host, fallback="unknown-host")
    source = safe_name(info.source, fallback="root")
    return f"{host}/{source}/{stamp}{ARCHIVE_SUFFIX}"


def safe_name(text: str, *, fallback: str) -> str:
    """One path component from any text: ASCII letters, digits, ``._-``; no leading dot.

    ``/home/alice/My Documents`` → ``home_alice_My_Documents``. Long names are
    cut and end in a short hash of the full text, so that they stay distinct.
    """
    safe = _UNSAFE_RE.sub("_", text).strip("._-")
    if not safe:
        return fallback
    if len(safe) > _MAX_NAME:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        safe = f"{safe[: _MAX_NAME - 13]}-{digest}"
    return safe


def _check_part_shape(part: PartChecksums, body_size: int, part_size: int) -> None:
    """What a server rejects before it looks at the bytes."""
    if body_size != part.size:
        raise InvalidRequestError(f"part {part.number}: {body_size} bytes sent, {part.size} said")
    if not 0 <= part.number < LOCAL_LIMITS.max_parts:
        raise InvalidRequestError(f"part number {part.number} is out of range")
    if part.offset != part.number * part_size:
        raise InvalidRequestError(f"part {part.number} cannot start at byte {part.offset}")
    if part.size > part_size or (part.size == 0 and part.number > 0):
        raise InvalidRequestError(f"part {part.number} has {part.size} bytes (parts: {part_size})")


def _check_part_list(parts: list[CompletePart], totals: ArchiveTotals, part_size: int) -> None:
    """Parts 0..n-1, all but the last exactly ``part_size``, sizes adding up."""
    numbers = [p.checksums.number for p in parts]
    if numbers != list(range(totals.part_count)):
        raise InvalidRequestError(
            f"complete needs parts 0 to {totals.part_count - 1} in order, got {len(parts)} parts"
        )
    for p in parts[:-1]:
        if p.checksums.size != part_size:
            raise InvalidRequestError(
                f"part {p.checksums.number} has {p.checksums.size} bytes; "
                f"every part but the last must have {part_size}"
            )
    if sum(p.checksums.size for p in parts) != totals.size:
        raise InvalidRequestError(f"the parts do not add up to {totals.size} bytes")


def _assemble(
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


def _same_archive(path: Path, totals: ArchiveTotals) -> bool:
    """Whether ``path`` holds exactly the archive described by ``totals``."""
    try:
        if path.stat().st_size != totals.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                from_thread.check_cancelled()
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.digest() == totals.sha256


def _manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MANIFEST_SUFFIX)


def manifest(key: str, info: ArchiveInfo, totals: ArchiveTotals) -> dict[str, object]:
    """The manifest beside each archive: enough to rebuild a lost catalog.

    The fields are the S3 manifest's, less ``storage_class``.
    """
    return {
        "format": "aglacier-manifest",
        "format_version": MANIFEST_FORMAT,
        "key": key,
        "source": info.source,
        "host": info.host,
        "created_at": _utc(info.created_at).isoformat(),
        "size": totals.size,
        "sha256": totals.sha256.hex(),
        "tree_hash": totals.tree_hash.hex(),
        "part_size": info.part_size,
        "part_count": totals.part_count,
        "aglacier_version": info.aglacier_version,
    }


def _write_manifest(
    root: Path, key: str, info: ArchiveInfo, totals: ArchiveTotals, *, scratch: Path
) -> None:
    """Write the manifest via a temporary file in ``scratch``, a folder under ``.uploads``
    (a crash must not leave a stray temporary file beside the archives)."""
    text = json.dumps(manifest(key, info, totals), indent=2) + "\n"
    _write_atomically(_manifest_path(root / key), text.encode(), scratch=scratch)


def _utc(moment: datetime) -> datetime:
    # ArchiveInfo promises UTC; a naive time is taken to be UTC, never local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _part_files(folder: Path) -> dict[int, Path]:
    files = {}
    for entry in os.scandir(folder):
        match = _PART_RE.fullmatch(entry.name)
        if match:
            files[int(match.group(1))] = Path(entry.path)
    return files


def _write_atomically(path: Path, data: bytes, *, scratch: Path | None = None) -> None:
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
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
