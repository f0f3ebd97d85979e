"""Reading archives back from S3: restores from the Glacier classes, then part reads.

An object in GLACIER or DEEP_ARCHIVE must be restored (RestoreObject) before
it can be read; HeadObject's ``Restore`` header says whether the restored copy
is ready and until when. Objects in any other class are readable at once.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from aglacier.backends.base import PartData, Retrieval, RetrievalState, Tier
from aglacier.backends.s3_bucket import S3Bucket
from aglacier.errors import (
    IntegrityError,
    InvalidRequestError,
    NoSuchArchiveError,
    TransientBackendError,
)

#: Storage classes whose objects must be restored before they can be read.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class S3Restore:
    """Retrievals of the archives in one bucket (the retrieval half of the S3 backend)."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket
        # Set once a server turns out to ignore GetObject's PartNumber (moto does).
        self._ranged_reads = False

    async def request(self, archive_id: str, tier: Tier, days: int) -> Retrieval:
        """RestoreObject for GLACIER and DEEP_ARCHIVE objects; others are readable at once."""
        url = self._bucket.url(archive_id)
        storage_class, _ = await self._storage(archive_id)
        if storage_class not in ARCHIVE_CLASSES:
            return Retrieval(archive_id, tier, RetrievalState.READY, detail=storage_class)
        if storage_class == "DEEP_ARCHIVE" and tier is Tier.EXPEDITED:
            raise InvalidRequestError(
                f"{url} is in DEEP_ARCHIVE, which has no Expedited "
                "retrieval: use Standard (up to 12 hours) or Bulk (up to 48 hours)"
            )
        with self._bucket.errors(f"request a restore of {url}"):
            try:
                response = await self._bucket.client.restore_object(
                    Bucket=self._bucket.name,
                    Key=archive_id,
                    RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": str(tier)}},
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "RestoreAlreadyInProgress":
                    raise
                return Retrieval(archive_id, tier, RetrievalState.IN_PROGRESS)
        # 200: a restored copy exists already (its expiry was extended); 202: restore started.
        status = response["ResponseMetadata"]["HTTPStatusCode"]
        state = RetrievalState.READY if status == 200 else RetrievalState.IN_PROGRESS
        return Retrieval(archive_id, tier, state)

    async def status(self, retrieval: Retrieval) -> Retrieval:
        """HeadObject's ``Restore`` header: ongoing, or readable until its expiry date."""
        state, detail = restore_state(*await self._storage(retrieval.archive_id))
        return Retrieval(retrieval.archive_id, retrieval.tier, state, detail=detail)

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        """GetObject by part number, with the part's base64 SHA256 as S3 reports it.

        botocore does not check that checksum (it would hash on the event loop):
        the caller does, in a worker thread.
        """
        key = retrieval.archive_id
        start = number * part_size
        length = min(part_size, archive_size - start)
        if number < 0 or length <= 0:
            raise InvalidRequestError(f"part {number} is outside {self._bucket.url(key)}")
        request: dict[str, Any] = {
            "Bucket": self._bucket.name,
            "Key": key,
            "ChecksumMode": "ENABLED",
        }
        if self._ranged_reads:
            request["Range"] = f"bytes={start}-{start + length - 1}"
        else:
            request["PartNumber"] = number + 1
        action = f"read part {number} of {self._bucket.url(key)}"
        with self._bucket.errors(action, not_found=NoSuchArchiveError):
            response = await self._bucket.client.get_object(**request)
            async with response["Body"] as stream:
                data: bytes = await stream.read()
        data = self._the_part(
            action,
            response.get("ContentRange"),
            data,
            start=start,
            length=length,
            archive_size=archive_size,
        )
        if len(data) != length:
            raise TransientBackendError(f"{action}: got {len(data)} of {length} bytes")
        checksum = response.get("ChecksumSHA256")
        if checksum is not None and "-" in checksum:  # the object's composite, not the part's
            checksum = None
        return PartData(number=number, data=data, checksum=checksum)

    def _the_part(
        self,
        action: str,
        content_range: str | None,
        data: bytes,
        *,
        start: int,
        length: int,
        archive_size: int,
    ) -> bytes:
        """The part out of a GetObject answer, checking the range S3 says it sent."""
        if content_range is None and len(data) == archive_size and archive_size != length:
            # The server ignored PartNumber and sent the whole object (moto does):
            # cut the part out, and read by byte range from now on.
            self._ranged_reads = True
            return data[start : start + length]
        expected = f"bytes {start}-{start + length - 1}/{archive_size}"
        if content_range is not None and content_range != expected:
            raise IntegrityError(
                f"{action}: S3 sent {content_range}, expected {expected} "
                "(was the archive uploaded with another part size?)"
            )
        return data

    async def _storage(self, key: str) -> tuple[str, str | None]:
        """The object's storage class and ``Restore`` header."""
        head = await self._bucket.head(key)
        if head is None:
            raise NoSuchArchiveError(f"{self._bucket.url(key)} does not exist")
        return head.get("StorageClass", "STANDARD"), head.get("Restore")


def restore_state(storage_class: str, restore: str | None) -> tuple[RetrievalState, str | None]:
    """The retrieval state from HeadObject's ``StorageClass`` and ``Restore`` header."""
    if storage_class not in ARCHIVE_CLASSES:
        return RetrievalState.READY, storage_class
    if restore is None:
        return RetrievalState.EXPIRED, "no restored copy: request a retrieval"
    if 'ongoing-request="true"' in restore:
        return RetrievalState.IN_PROGRESS, None
    _, _, expiry = restore.partition('expiry-date="')
    expiry = expiry.rstrip('"')
    return RetrievalState.READY, (f"readable until {expiry}" if expiry else None)
