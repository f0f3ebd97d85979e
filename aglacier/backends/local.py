"""A local folder as a destination (``file:///path``), with the services' semantics.

The folder behaves like a vault or a bucket so that the engine, its resume logic
and the conformance suite treat it like any other destination::

    root/
      .uploads/<upload id>/upload.json       an unfinished upload (its ArchiveInfo)
      .uploads/<upload id>/archive.tmp       the archive being assembled: part n is
                                             written in place at n × part size
      .uploads/<upload id>/part-<n>.sha256   "<hex SHA256> <size>": written once part
                                             n's bytes are synced, it is the ack
      <host>/<source path>/<UTC time>-<suffix>.tar.gpg                 a finished archive
      <host>/<source path>/<UTC time>-<suffix>.tar.gpg.manifest.json   its manifest

Like S3 with SHA256 checksums, ``upload_part`` hashes the body once and rejects
it unless its SHA256 is the one given, and ``complete`` checks the part list
against the acknowledgements (every part there, with the size, SHA256 and etag
named) and, for 1 MiB × 2^n parts, the archive's tree hash against the parts'
(as a vault does). The archive's SHA256 and tree hash are recorded in the
manifest as given: they are what staging computed from the same bytes, and
re-reading the archive to compute them again would cost two passes over it.
Parts sent again are harmless (their acknowledgement is removed before their
bytes are rewritten). The archive appears atomically (the synced assembly file
is renamed), so a crash leaves either no archive or the whole one, and it takes
its size on this disk once: nothing is copied.

Archive keys and manifests are the S3 backend's (see :mod:`aglacier.backends.naming`),
without a prefix. Every file operation runs in a worker thread, in
:class:`~aglacier.backends.local_store.FolderStore`; the event loop never blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anyio import to_thread

from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    CompletePart,
    Inventory,
    InventoryJob,
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
from aglacier.backends.local_inventory import folder_inventory
from aglacier.backends.local_store import FolderStore

#: A disk has no request limit, but more writers than this only add seeks.
DEFAULT_MAX_CONNECTIONS = 8


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
        self._store = FolderStore(root.absolute())
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
        """Check ``body`` against ``part.sha256``, write it in place, sync it, acknowledge it."""
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
        """Check the parts against their acknowledgements, then make the archive appear."""
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

    async def request_inventory(self) -> InventoryJob:
        """A folder lists at once: ready, with no job."""
        return InventoryJob(RetrievalState.READY)

    async def inventory_status(self, job: InventoryJob) -> InventoryJob:
        """Always ready."""
        return job

    async def read_inventory(self, job: InventoryJob) -> Inventory:
        """Every archive file with its manifest beside it (see ``local_inventory``)."""
        return await to_thread.run_sync(folder_inventory, self.root)

    async def aclose(self) -> None:
        """Nothing to release."""
