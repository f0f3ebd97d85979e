"""The one contract every destination implements.

The engine speaks only to a :class:`Backend`; S3 with a Glacier storage class,
a Glacier vault and a local folder sit behind it. The contract, stated once:

Errors
    A backend raises only :class:`~aglacier.errors.AglacierError` subclasses.
    :class:`~aglacier.errors.TransientBackendError` (throttling, 5xx, timeouts,
    dropped connections) may succeed if the same call is made again later;
    everything else is permanent and must not be retried as is:
    :class:`~aglacier.errors.AccessDeniedError`,
    :class:`~aglacier.errors.NoSuchDestinationError`,
    :class:`~aglacier.errors.ChecksumRejectedError` (the server computed another
    checksum than we sent), :class:`~aglacier.errors.UploadNotFoundError` (the
    upload expired or was aborted: start a new one from the same spool),
    :class:`~aglacier.errors.InvalidRequestError` (a request no server would
    take: ``complete`` raises it for missing or misshapen parts),
    :class:`~aglacier.errors.CompletionUnknownError` (the service cannot tell
    whether a complete took effect: resumable, settled by ``aglacier resume``).
    Backends do not retry: :class:`~aglacier.backends.retry.RetryingBackend`
    is the one layer that does, and botocore's own retries are switched off.

Idempotence
    ``upload_part`` may be repeated with the same bytes: the server keeps one
    copy. ``list_parts``, ``list_pending`` and ``retrieval_status`` only read.
    ``complete`` and ``abort`` are not idempotent on every service; after a
    crash, :meth:`Backend.find_completed` tells whether a complete took effect:
    the archive, ``None`` while the upload is still pending or when the archive
    is certainly not there, or :class:`~aglacier.errors.CompletionUnknownError`
    when the service cannot tell (a vault knows its archives only through an
    inventory). The retry layer also calls it when the answer to a ``complete``
    was lost and a retry found the upload gone.
    ``request_retrieval`` may cost money: callers store its ticket and reuse it.

Limits
    :attr:`Backend.limits` gives the part-size rule and maximum part count;
    :attr:`Backend.max_connections` how many requests may be in flight at once.

Listing
    :class:`ListingBackend` adds what rebuilding a lost catalog needs: an
    inventory of every archive on the destination. S3 and a local folder list
    theirs at once; a vault only through an inventory job that takes hours,
    so the three calls are shaped for the slow case (request, poll, read) and
    the fast destinations answer "ready" straight away.

Bodies are ``bytes`` (botocore cannot send memoryviews or async readers), and
the caller passes every part's SHA256 and tree hash, computed while the part
was spooled, so that no backend hashes on the event loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aglacier.backends.limits import BackendLimits


@dataclass(frozen=True)
class ArchiveInfo:
    """What is known of an archive when its upload starts (before staging ends)."""

    source: str  # the folder or file backed up, as an absolute path
    host: str
    created_at: datetime  # UTC
    part_size: int
    aglacier_version: str


@dataclass(frozen=True)
class PartChecksums:
    """A part as spooled: its place in the archive and its checksums (raw digests)."""

    number: int  # 0-based; S3 part numbers are this + 1
    offset: int
    size: int
    sha256: bytes
    tree_hash: bytes


@dataclass(frozen=True)
class UploadedPart:
    """A part the server acknowledged."""

    number: int  # 0-based
    size: int
    #: S3's ETag; the local backend's own tag; ``None`` for vaults.
    etag: str | None = None
    #: The checksum the server reports for the part, as the server encodes it
    #: (S3: base64 SHA256; vault: hex tree hash), or ``None`` if it reports none.
    checksum: str | None = None


@dataclass(frozen=True)
class CompletePart:
    """A part as given to :meth:`Backend.complete`."""

    checksums: PartChecksums
    etag: str | None


@dataclass(frozen=True)
class ArchiveTotals:
    """The whole archive, known once staging has finished."""

    size: int
    sha256: bytes
    tree_hash: bytes
    part_count: int


@dataclass(frozen=True)
class Upload:
    """A multipart upload the server acknowledged."""

    upload_id: str
    #: Where the archive will be: S3 key, local file name; ``None`` for vaults
    #: (a vault names the archive only when the upload completes).
    key: str | None


@dataclass(frozen=True)
class PendingUpload:
    """An unfinished multipart upload as the server lists it."""

    upload_id: str
    key: str | None
    initiated: datetime | None
    description: str | None  # vault archive description, S3 key


@dataclass(frozen=True)
class StoredArchive:
    """A finished archive on the destination."""

    archive_id: str  # vault archive id, S3 key, local file name
    location: str  # a URL a person can read
    size: int


class Tier(enum.StrEnum):
    EXPEDITED = "Expedited"
    STANDARD = "Standard"
    BULK = "Bulk"


class RetrievalState(enum.StrEnum):
    IN_PROGRESS = "in-progress"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"  # S3's restored copy or a vault job output is gone


@dataclass(frozen=True)
class Retrieval:
    """A retrieval request: a vault job, an S3 restore, or a local no-op."""

    archive_id: str
    tier: Tier
    state: RetrievalState
    job_id: str | None = None  # vault jobs only
    detail: str | None = None


@dataclass(frozen=True)
class PartData:
    """One part read back, with the checksum the server sent for it."""

    number: int
    data: bytes
    #: S3: base64 SHA256 of the part; vault: hex tree hash of the range;
    #: local: hex SHA256 of the part; ``None`` when the server sent none.
    checksum: str | None


@dataclass(frozen=True)
class InventoryJob:
    """A request for a list of every archive on the destination.

    S3 and a local folder list at once: their job is ``READY`` and has no id.
    A vault's is an inventory-retrieval job (hours); store its ``job_id`` and
    pass the job back to :meth:`ListingBackend.inventory_status`.
    """

    state: RetrievalState
    job_id: str | None = None  # vault jobs only
    requested_at: datetime | None = None  # when the vault accepted the job
    completed_at: datetime | None = None  # when its output became readable
    detail: str | None = None


@dataclass(frozen=True)
class ListedArchive:
    """An archive an inventory found, with what the destination keeps about it.

    ``source``, ``host`` and ``part_size`` come from aglacier's own record beside
    the archive (the S3 or local manifest, the vault archive description): they
    are ``None`` for a *foreign* archive, one aglacier did not write (a vault
    archive whose description is not aglacier's). ``sha256`` is ``None`` where
    the destination does not keep it: a vault knows only the tree hash.
    ``created_at`` is when the backup started (the manifest's or description's
    time); for a foreign archive, when the vault created it.
    """

    archive_id: str  # vault archive id, S3 key, local file name
    size: int
    tree_hash: str  # hex
    created_at: datetime  # UTC
    source: str | None
    host: str | None
    part_size: int | None
    sha256: str | None = None  # hex
    storage_class: str | None = None  # S3 only, as the manifest records it
    description: str | None = None  # the vault archive description, verbatim
    manifest: Mapping[str, Any] | None = None  # the S3 or local manifest, as stored
    #: What a person should know about this entry (e.g. a source path cut short).
    notes: tuple[str, ...] = ()

    @property
    def foreign(self) -> bool:
        """Whether aglacier did not write this archive (nothing says where it came from)."""
        return self.source is None


class SkipReason(enum.StrEnum):
    """Why an inventory could not list something on the destination as an archive."""

    #: A manifest whose archive is missing: an upload that never completed (or
    #: one completing right now, from another machine).
    INCOMPLETE = "incomplete"
    #: The archive's size is not the one its manifest records.
    MISMATCH = "mismatch"
    #: A manifest (or vault inventory entry) that is not valid or lacks fields aglacier needs.
    BAD_MANIFEST = "bad-manifest"
    #: An archive with no manifest beside it: nothing says what it holds.
    NO_MANIFEST = "no-manifest"
    #: An object or file aglacier did not write (S3 and local folders only).
    FOREIGN = "foreign"


@dataclass(frozen=True)
class SkippedEntry:
    """Something on the destination an inventory did not list as an archive, and why."""

    name: str  # the S3 key, the path under the local folder, or a vault archive id
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class Inventory:
    """Every archive on the destination, and what could not be listed as one."""

    archives: list[ListedArchive]
    skipped: list[SkippedEntry]
    #: When the destination took the inventory: a vault's is up to a day old and
    #: misses newer archives. ``None``: listed just now (S3, local).
    taken_at: datetime | None = None


@runtime_checkable
class Backend(Protocol):
    """A destination for archives. Every method may raise the errors listed above."""

    @property
    def url(self) -> str:
        """The destination as a URL (``s3://bucket/prefix``, ``glacier://vault``, ``file:///``)."""
        ...

    @property
    def limits(self) -> BackendLimits: ...

    @property
    def max_connections(self) -> int: ...

    async def check(self) -> None:
        """Fail fast if the destination is missing or the credentials do not work."""
        ...

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        """Start a multipart upload with ``info.part_size``; returns once acknowledged."""
        ...

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        """Send one part; repeating it with the same bytes is harmless."""
        ...

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        """Every part the server holds for ``upload`` (all pages), by number."""
        ...

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        """Join the parts into the archive; the server checks what it can.

        Missing or misshapen parts raise :class:`~aglacier.errors.InvalidRequestError`
        before anything is sent.
        """
        ...

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        """After a crash around ``complete``, or a lost answer to one: the archive
        if the complete took effect.

        Returns ``None`` while the upload is still pending and when the archive is
        certainly not there; raises :class:`~aglacier.errors.CompletionUnknownError`
        when the service cannot tell (a vault knows its archives only through an
        inventory job). Only reads; the local folder also finishes its tidying up.
        """
        ...

    async def abort(self, upload: Upload) -> None:
        """Drop an unfinished upload and its parts (only ever on a user's request)."""
        ...

    async def list_pending(self) -> list[PendingUpload]:
        """Unfinished uploads on the destination (all pages)."""
        ...

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        """Ask for an archive to be made readable; may cost money, so store the result."""
        ...

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        """The retrieval's current state."""
        ...

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        """Read part ``number`` of a ready archive, with the server's checksum for it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ListingBackend(Backend, Protocol):
    """A :class:`Backend` that can list its archives, to rebuild a lost catalog.

    Every backend (and :class:`~aglacier.backends.retry.RetryingBackend`)
    implements it. It is a protocol of its own so that code that only uploads
    does not have to provide it.

    The three calls only read, except that a vault's :meth:`request_inventory`
    may start a job, which costs a request: callers store the job and pass it
    back rather than asking again. Errors are the :class:`Backend` ones; a job
    the vault has dropped (its output is kept for about 24 hours) is
    ``EXPIRED`` in :meth:`inventory_status` and raises
    :class:`~aglacier.errors.NoSuchArchiveError` in :meth:`read_inventory`.
    """

    async def request_inventory(self) -> InventoryJob:
        """Start a listing of every archive, or find one already under way.

        S3 and local: a ``READY`` job without id. Vault: a whole-vault JSON
        inventory job that is in progress or has succeeded (ListJobs), else a
        new one (InitiateJob); a vault that has never been inventoried (the
        first inventory comes about a day after the first archive) raises
        :class:`~aglacier.errors.NotReadyError`.
        """
        ...

    async def inventory_status(self, job: InventoryJob) -> InventoryJob:
        """The job's current state (S3 and local: ``job`` as it is, always ready)."""
        ...

    async def read_inventory(self, job: InventoryJob) -> Inventory:
        """Every archive the ready ``job`` lists, and what could not be listed, with why.

        S3: every ``*.manifest.json`` under the prefix whose archive object
        exists with the manifest's size. Local: the same for the folder's files.
        Vault: the inventory's archives, parsed from their descriptions. Only a
        listing and small reads: no archive is read. A job that is not ready
        raises :class:`~aglacier.errors.InvalidRequestError`.
        """
        ...
