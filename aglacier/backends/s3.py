"""S3 with a Glacier storage class: the main destination.

Each archive is one object, uploaded in parts with their precomputed SHA256
(``ChecksumSHA256``) and verified after the complete against the composite
checksum S3 reports (``base64(sha256(part digests))-N``): moto, for one, never
checks part checksums, so this check is ours. Beside it, a small JSON manifest
in the STANDARD class records the whole archive's SHA256, tree hash and the
composite checksum to expect, so that a lost catalog can be rebuilt from the
bucket and an archive completed just before a crash can be verified.

Keys and manifests are described in :mod:`aglacier.backends.naming`::

    {prefix}/{host}/{source path made safe}/{UTC timestamp}-{suffix}.tar.gpg
    {prefix}/{host}/{source path made safe}/{UTC timestamp}-{suffix}.tar.gpg.manifest.json

The requests themselves go through :class:`~aglacier.backends.s3_bucket.S3Bucket`;
restores and part reads are :class:`~aglacier.backends.s3_restore.S3Restore`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

from aglacier.backends.aws import AwsSettings, ClientBackend, aws_client
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
from aglacier.backends.limits import S3_LIMITS, BackendLimits
from aglacier.backends.naming import (
    archive_key,
    manifest_bytes,
    manifest_document,
    manifest_key,
    utc,
)
from aglacier.backends.parts import ordered_parts
from aglacier.backends.s3_bucket import PAGE_SIZE, S3Bucket, key_of
from aglacier.backends.s3_inventory import S3Inventory
from aglacier.backends.s3_restore import ARCHIVE_CLASSES, S3Restore
from aglacier.errors import (
    ChecksumRejectedError,
    ConfigError,
    InvalidRequestError,
    TransientBackendError,
)
from aglacier.treehash import composite_checksum, to_base64

#: Every class the configuration accepts (aglacier.destination.StorageClass).
STORAGE_CLASSES = ARCHIVE_CLASSES | {
    "GLACIER_IR",
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
}


class S3Backend(ClientBackend):
    """Archives as objects in ``bucket`` under ``prefix``, in ``storage_class``.

    Takes an open aiobotocore S3 client (see :func:`~aglacier.backends.aws.aws_client`);
    ``on_close`` releases it (set by :meth:`open`). ``page_size`` is for tests.
    """

    def __init__(
        self,
        client: Any,
        *,
        bucket: str,
        prefix: str = "backups",
        storage_class: str = "DEEP_ARCHIVE",
        max_connections: int,
        on_close: AsyncExitStack | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if storage_class not in STORAGE_CLASSES:
            raise ConfigError(
                f"unknown S3 storage class {storage_class!r}; use one of "
                + ", ".join(sorted(STORAGE_CLASSES))
            )
        super().__init__(client, max_connections=max_connections, on_close=on_close)
        self._bucket = S3Bucket(client, bucket, page_size=page_size)
        self._restore = S3Restore(self._bucket)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.storage_class = storage_class
        self._inventory = S3Inventory(self._bucket, self.prefix, max_connections=max_connections)

    @classmethod
    async def open(
        cls,
        settings: AwsSettings,
        *,
        bucket: str,
        prefix: str = "backups",
        storage_class: str = "DEEP_ARCHIVE",
        page_size: int = PAGE_SIZE,
    ) -> S3Backend:
        """A backend with its own client, released by :meth:`aclose`."""
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(aws_client("s3", settings))
            backend = cls(
                client,
                bucket=bucket,
                prefix=prefix,
                storage_class=storage_class,
                max_connections=settings.max_connections,
                on_close=stack.pop_all(),
                page_size=page_size,
            )
        return backend

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def limits(self) -> BackendLimits:
        return S3_LIMITS

    # -- uploads ---------------------------------------------------------------------------

    async def check(self) -> None:
        """HeadBucket: a missing bucket or refused credentials fail here, before staging."""
        with self._bucket.errors(
            f"check {self.url}", not_found_message=f"bucket {self.bucket!r} does not exist"
        ):
            await self._client.head_bucket(Bucket=self.bucket)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        """CreateMultipartUpload at a new key for the archive, with SHA256 part checksums."""
        key = archive_key(info, prefix=self.prefix)
        with self._bucket.errors(f"start upload to {self._bucket.url(key)}"):
            response = await self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                StorageClass=self.storage_class,
                ChecksumAlgorithm="SHA256",
                ContentType="application/pgp-encrypted",
                Metadata=_metadata(info),
            )
        return Upload(upload_id=response["UploadId"], key=key)

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        """UploadPart with the part's SHA256; S3 rejects the part if the bytes differ."""
        key = key_of(upload)
        if len(body) != part.size:
            raise InvalidRequestError(f"part {part.number} has {len(body)} bytes, not {part.size}")
        sent = to_base64(part.sha256)
        response = await self._bucket.on_upload(
            upload,
            f"upload part {part.number} to {self._bucket.url(key)}",
            lambda: self._client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload.upload_id,
                PartNumber=part.number + 1,
                Body=body,
                ContentLength=part.size,
                ChecksumSHA256=sent,
            ),
        )
        echoed = response.get("ChecksumSHA256")
        if echoed is not None and echoed != sent:
            raise ChecksumRejectedError(
                f"part {part.number} of {self._bucket.url(key)}: S3 computed checksum "
                f"{echoed}, we sent {sent}"
            )
        return UploadedPart(
            number=part.number, size=part.size, etag=response["ETag"], checksum=echoed
        )

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        """ListParts, every page, by part number (the server is the truth about parts)."""
        key = key_of(upload)
        parts: dict[int, UploadedPart] = {}
        marker = 0
        while True:
            page = await self._bucket.on_upload(
                upload,
                f"list parts of {self._bucket.url(key)}",
                lambda: self._client.list_parts(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload.upload_id,
                    PartNumberMarker=marker,  # noqa: B023 (called before the loop moves on)
                    MaxParts=self._bucket.page_size,
                ),
            )
            numbers = [int(item["PartNumber"]) for item in page.get("Parts", [])]
            for number, item in zip(numbers, page.get("Parts", []), strict=True):
                # Only parts after the marker count (a server may repeat some).
                if number > marker:
                    parts[number - 1] = _uploaded_part(item)
            next_marker = int(page.get("NextPartNumberMarker") or max(numbers, default=0))
            if not page.get("IsTruncated") or next_marker <= marker:
                break  # the last page, or a server that would make us loop forever
            marker = next_marker
        return [parts[n] for n in sorted(parts)]

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        """Write the manifest, complete, then check size and composite checksum (HeadObject).

        The manifest goes first, with the composite checksum the parts must give,
        so that :meth:`find_completed` can verify an object completed just before
        a crash. A mismatch raises ChecksumRejectedError and leaves the object
        as it is (a new upload of the same spool goes to a new key).
        """
        key = key_of(upload)
        ordered = ordered_parts(parts, totals, info.part_size)
        if any(p.etag is None for p in ordered):
            raise InvalidRequestError("complete needs the ETag S3 returned for every part")
        expected = composite_checksum(p.checksums.sha256 for p in ordered)
        await self._put_manifest(key, info, totals, expected)
        await self._bucket.on_upload(
            upload,
            f"complete {self._bucket.url(key)}",
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": [_complete_entry(p) for p in ordered]},
            ),
        )
        head = await self._bucket.head(key)
        if head is None:
            raise TransientBackendError(f"{self._bucket.url(key)} is not visible after complete")
        problem = _mismatch(head, totals.size, expected)
        if problem is not None:
            raise ChecksumRejectedError(f"{self._bucket.url(key)}: {problem}")
        return self._stored(key, totals.size)

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        """HEAD the key: the archive, if its manifest is this archive's and S3's size
        and composite checksum are the ones the manifest expects; else ``None``
        (the archive is then uploaded again from the spool, to a new key)."""
        key = key_of(upload)
        head = await self._bucket.head(key)
        if head is None:
            return None
        manifest = await self._bucket.get_json(manifest_key(key))
        if manifest is None or manifest.get("sha256") != totals.sha256.hex():
            return None
        if _mismatch(head, totals.size, str(manifest.get("s3_checksum", ""))) is not None:
            return None
        return self._stored(key, totals.size)

    async def abort(self, upload: Upload) -> None:
        """AbortMultipartUpload; an unknown upload raises UploadNotFoundError."""
        key = key_of(upload)
        await self._bucket.on_upload(
            upload,
            f"abort the upload to {self._bucket.url(key)}",
            lambda: self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload.upload_id
            ),
        )

    async def list_pending(self) -> list[PendingUpload]:
        """ListMultipartUploads under the prefix, every page."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        return [
            PendingUpload(
                upload_id=item["UploadId"],
                key=item["Key"],
                initiated=item.get("Initiated"),
                description=item["Key"],
            )
            for item in await self._bucket.multipart_uploads(prefix)
        ]

    # -- retrieval (see s3_restore) --------------------------------------------------------

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        """RestoreObject for GLACIER and DEEP_ARCHIVE objects; others are readable at once."""
        return await self._restore.request(archive_id, tier, days)

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        """HeadObject's ``Restore`` header: ongoing, or readable until its expiry date."""
        return await self._restore.status(retrieval)

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        """GetObject of one part, with the part's base64 SHA256 when S3 reports it."""
        return await self._restore.read_part(retrieval, number, part_size, archive_size)

    # -- listing (see s3_inventory) ---------------------------------------------------------

    async def request_inventory(self) -> InventoryJob:
        """A bucket lists at once: ready, with no job."""
        return InventoryJob(RetrievalState.READY)

    async def inventory_status(self, job: InventoryJob) -> InventoryJob:
        """Always ready."""
        return job

    async def read_inventory(self, job: InventoryJob) -> Inventory:
        """Every ``*.manifest.json`` under the prefix whose archive is there with its size."""
        return await self._inventory.read()

    # -- helpers ---------------------------------------------------------------------------

    async def _put_manifest(
        self, key: str, info: ArchiveInfo, totals: ArchiveTotals, s3_checksum: str
    ) -> None:
        """Written before the complete: a manifest without its archive is an upload
        that has not completed (yet)."""
        document = manifest_document(
            key=key,
            info=info,
            totals=totals,
            s3_checksum=s3_checksum,
            storage_class=self.storage_class,
        )
        await self._bucket.put_json(manifest_key(key), manifest_bytes(document))

    def _stored(self, key: str, size: int) -> StoredArchive:
        return StoredArchive(archive_id=key, location=self._bucket.url(key), size=size)


def composite_matches(reported: str, expected: str) -> bool:
    """Compare checksums, tolerating a missing ``-N`` suffix (moto's HeadObject omits it)."""
    value, _, count = reported.partition("-")
    expected_value, _, expected_count = expected.partition("-")
    return value == expected_value and count in ("", expected_count)


def _mismatch(head: dict[str, Any], size: int, expected: str) -> str | None:
    """Why HeadObject's answer is not the archive we sent, or ``None``."""
    if head.get("ContentLength") != size:
        return f"S3 holds {head.get('ContentLength')} bytes, not {size}"
    reported = head.get("ChecksumSHA256")
    if reported is None:
        return None  # a server that keeps no checksum: the size is all it can tell
    if not composite_matches(reported, expected):
        return f"S3 reports checksum {reported}, the parts we sent give {expected}"
    return None


def _complete_entry(part: CompletePart) -> dict[str, Any]:
    return {
        "PartNumber": part.checksums.number + 1,
        "ETag": part.etag,
        "ChecksumSHA256": to_base64(part.checksums.sha256),
    }


def _uploaded_part(item: dict[str, Any]) -> UploadedPart:
    return UploadedPart(
        number=int(item["PartNumber"]) - 1,
        size=int(item["Size"]),
        etag=item.get("ETag"),
        checksum=item.get("ChecksumSHA256"),
    )


def _metadata(info: ArchiveInfo) -> dict[str, str]:
    # User metadata travels in HTTP headers: ASCII only, 2 KB in all; the manifest
    # keeps the exact values.
    return {
        "source": _percent_encoded(info.source, 1024),
        "host": _percent_encoded(info.host, 255),
        "created-at": utc(info.created_at).isoformat(),
        "aglacier-version": _percent_encoded(info.aglacier_version, 64),
    }


def _percent_encoded(text: str, limit: int) -> str:
    encoded = quote(text.encode("utf-8", "surrogateescape"), safe="/")
    if len(encoded) <= limit:
        return encoded
    cut = encoded[:limit]
    escape = cut.rfind("%", limit - 2)  # do not leave half an escape at the end
    return cut[:escape] if escape >= 0 else cut
