"""The local folder's layout and invariants, in blocking code (run in worker threads).

See :mod:`aglacier.backends.local` for the layout. An upload is a folder under
``.uploads`` that appears whole (filled under a hidden name, then renamed) and
disappears at once (renamed before it is removed); parts are written in place
into its assembly file; an archive appears by one rename of that fsynced file,
once every part it needs is acknowledged with the SHA256 ``complete`` names.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    CompletePart,
    PartChecksums,
    PendingUpload,
    StoredArchive,
    Upload,
    UploadedPart,
)
from aglacier.backends.limits import LOCAL_LIMITS
from aglacier.backends.local_files import (
    Ack,
    ack_path,
    check_acks,
    check_part_shape,
    check_tree_hash,
    fsync_dir,
    manifest_path,
    parts_composite,
    read_acks,
    seal,
    stored_composite,
    write_atomically,
    write_manifest,
    write_part,
)
from aglacier.backends.naming import ARCHIVE_SUFFIX, archive_key
from aglacier.backends.parts import ordered_parts
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

UPLOADS_DIR = ".uploads"

_INFO_FILE = "upload.json"
_ASSEMBLY_FILE = "archive.tmp"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")

P = ParamSpec("P")
T = TypeVar("T")


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


class FolderStore:
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
        # Never created here: a missing folder usually means an unmounted disk (whose
        # empty mount point exists), and a backup must not fill the system disk instead.
        # The CLI creates the built-in default folder itself.
        raise NoSuchDestinationError(
            f"{self.root} does not exist",
            hint="create it with `mkdir -p` (once, with its disk mounted), or mount the disk",
        )

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
        (building / _ASSEMBLY_FILE).touch(exist_ok=False)  # its entry is synced with the next
        write_atomically(building / _INFO_FILE, record.to_json())
        building.rename(self.uploads / upload_id)
        fsync_dir(self.uploads)
        return Upload(upload_id, record.key)

    @_os_errors
    def write_part(self, upload_id: str, part: PartChecksums, body: bytes) -> str:
        folder = self._upload_dir(upload_id)
        record = self._load_record(folder)
        check_part_shape(part, len(body), record.info.part_size)
        digest = hashlib.sha256(body).hexdigest()  # the one pass over the bytes here
        if digest != part.sha256.hex():
            raise ChecksumRejectedError(
                f"part {part.number}: the body's SHA256 is {digest}, "
                f"not {part.sha256.hex()} as sent"
            )
        ack = ack_path(folder, part.number)
        try:
            if ack.exists():  # sent again: the old acknowledgement must not vouch for new bytes
                ack.unlink()
                fsync_dir(folder)
            # Bytes first, acknowledgement second: a crash between them leaves bytes
            # that nothing acknowledges, never an acknowledgement of other bytes.
            write_part(folder / _ASSEMBLY_FILE, part.offset, body)
            write_atomically(ack, Ack(part.number, digest, part.size).to_bytes())
        except FileNotFoundError:
            raise UploadNotFoundError(f"upload {upload_id} was aborted") from None
        return digest

    @_os_errors
    def list_parts(self, upload_id: str) -> list[UploadedPart]:
        folder = self._upload_dir(upload_id)
        self._load_record(folder)
        return [
            UploadedPart(ack.number, ack.size, etag=ack.sha256, checksum=ack.sha256)
            for _, ack in sorted(read_acks(folder).items())
        ]

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
        parts = ordered_parts(parts, totals, info.part_size)
        check_acks(parts, read_acks(folder))
        check_tree_hash(parts, totals, info.part_size)
        assembled = folder / _ASSEMBLY_FILE
        target = self.root / record.key
        if target.exists():
            # Only a repeated complete of this very upload may find its archive there.
            if stored_composite(target, totals, info.part_size) is None:
                raise InvalidRequestError(f"{target} exists and holds another archive")
            assembled.unlink(missing_ok=True)
        else:
            try:
                seal(assembled, totals.size)
            except FileNotFoundError:
                raise UploadNotFoundError(f"upload {upload_id} was aborted") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            assembled.replace(target)  # the commit point
            self._fsync_dirs_up_to_root(target.parent)
        write_manifest(self.root, record.key, info, totals, parts_composite(parts), scratch=folder)
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
        s3_checksum = stored_composite(self.root / key, totals, info.part_size)
        if s3_checksum is None:
            return None
        folder = self.uploads / upload.upload_id
        leftover = _ID_RE.fullmatch(upload.upload_id) is not None and folder.is_dir()
        if not manifest_path(self.root / key).exists():
            self.uploads.mkdir(exist_ok=True)
            scratch = folder if leftover else self.uploads
            write_manifest(self.root, key, info, totals, s3_checksum, scratch=scratch)
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
        if not resolved.is_relative_to(root) or resolved == root:
            return False
        # Only the top-level .uploads is ours: a source folder may be called that too.
        return resolved.parts[len(root.parts)] != UPLOADS_DIR and key.endswith(ARCHIVE_SUFFIX)

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
        """The archive's key, with a random suffix no other archive or upload has."""
        taken = {record.key for record in self._records()}
        while True:
            key = archive_key(info)
            if key not in taken and not (self.root / key).exists():
                return key

    def _remove_upload_dir(self, folder: Path) -> None:
        # Rename first so that the upload disappears at once, even if rmtree is cut short.
        doomed = folder.with_name(f".{folder.name}.deleting")
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            raise UploadNotFoundError(f"there is no upload {folder.name}") from None
        fsync_dir(folder.parent)
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
            fsync_dir(directory)
            if directory == self.root:
                break

    def _stored(self, key: str, size: int) -> StoredArchive:
        return StoredArchive(archive_id=key, location=(self.root / key).as_uri(), size=size)
