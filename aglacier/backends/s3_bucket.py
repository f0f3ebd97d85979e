"""One bucket through one aiobotocore client: the requests both halves of the S3 backend share.

:class:`~aglacier.backends.s3.S3Backend` (uploads) and
:class:`~aglacier.backends.s3_restore.S3Restore` (retrievals) make their calls
through an :class:`S3Bucket`, which names the bucket in every error, follows
every page of a listing, and works around moto where it differs from S3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from aglacier.backends.aws_errors import aws_errors
from aglacier.backends.base import Upload
from aglacier.backends.naming import parse_manifest
from aglacier.errors import (
    InvalidRequestError,
    NoSuchArchiveError,
    TransientBackendError,
    UploadNotFoundError,
)
from aglacier.treehash import to_base64

#: S3 returns at most 1,000 parts or uploads per page.
PAGE_SIZE = 1000

T = TypeVar("T")


class S3Bucket:
    """``bucket`` through ``client``; ``page_size`` is smaller in tests, to cross pages."""

    def __init__(self, client: Any, bucket: str, *, page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.name = bucket
        self.page_size = page_size
        # The caller checks each part's checksum in a worker thread: botocore must
        # not hash whole parts on the event loop to validate GetObject responses.
        client.meta.events.register(
            "before-call.s3.GetObject",
            _skip_response_validation,
            unique_id="aglacier-skip-response-validation",
        )

    @property
    def destination(self) -> str:
        return f"bucket {self.name!r}"

    def url(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.name}/{key}"

    def errors(self, action: str, **kwargs: Any) -> Any:
        """A context that turns botocore's errors into aglacier's, naming the bucket."""
        return aws_errors(action, self.destination, **kwargs)

    async def head(self, key: str) -> dict[str, Any] | None:
        """HeadObject with the object's checksum, or ``None`` if there is no object."""
        try:
            with self.errors(f"look up {self.url(key)}", not_found=NoSuchArchiveError):
                head: dict[str, Any] = await self.client.head_object(
                    Bucket=self.name, Key=key, ChecksumMode="ENABLED"
                )
        except NoSuchArchiveError:
            return None
        return head

    async def get_json(self, key: str) -> dict[str, Any] | None:
        """A small JSON object (a manifest), or ``None`` if it is missing or not an object."""
        try:
            with self.errors(f"read {self.url(key)}", not_found=NoSuchArchiveError):
                response = await self.client.get_object(Bucket=self.name, Key=key)
                async with response["Body"] as stream:
                    body: bytes = await stream.read()
        except NoSuchArchiveError:
            return None
        return parse_manifest(body)

    async def put_json(self, key: str, body: bytes) -> None:
        """PutObject of a small JSON document in the STANDARD class, with its SHA256."""
        with self.errors(f"write {self.url(key)}"):
            await self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=body,
                StorageClass="STANDARD",
                ContentType="application/json",
                ChecksumSHA256=to_base64(hashlib.sha256(body).digest()),
            )

    async def on_upload(self, upload: Upload, action: str, call: Callable[[], Awaitable[T]]) -> T:
        """Make a call on an upload; a 500 for an upload that is gone is UploadNotFoundError.

        moto answers an unknown UploadId with HTTP 500 instead of ``NoSuchUpload``,
        and a genuine 500 looks the same: ListMultipartUploads tells them apart.
        """
        gone = f"{action}: the upload {upload.upload_id} no longer exists"
        try:
            with self.errors(action, not_found=UploadNotFoundError, not_found_message=gone):
                return await call()
        except TransientBackendError as exc:
            if _status_of(exc.__cause__) != 500 or await self._upload_exists(upload):
                raise
            raise UploadNotFoundError(gone) from exc

    async def multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        """ListMultipartUploads under ``prefix``, every page, each upload once."""
        uploads: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        while True:
            with self.errors(f"list unfinished uploads in {self.url(prefix)}"):
                page = await self.client.list_multipart_uploads(
                    Bucket=self.name, Prefix=prefix, MaxUploads=self.page_size, **markers
                )
            for item in page.get("Uploads", []):
                if (item["Key"], item["UploadId"]) not in seen:
                    seen.add((item["Key"], item["UploadId"]))
                    uploads.append(item)
            next_markers = {
                "KeyMarker": page.get("NextKeyMarker") or "",
                "UploadIdMarker": page.get("NextUploadIdMarker") or "",
            }
            if (
                not page.get("IsTruncated")
                or next_markers == markers
                or not any(next_markers.values())
            ):
                return uploads
            markers = next_markers

    async def _upload_exists(self, upload: Upload) -> bool:
        uploads = await self.multipart_uploads(key_of(upload))
        return any(item["UploadId"] == upload.upload_id for item in uploads)


def key_of(upload: Upload) -> str:
    """The S3 key of an upload (every S3 upload has one)."""
    if upload.key is None:
        raise InvalidRequestError(f"upload {upload.upload_id} has no S3 key")
    return upload.key


def _status_of(exc: BaseException | None) -> int | None:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return None


def _skip_response_validation(params: dict[str, Any], **_: Any) -> None:
    checksum = params.get("context", {}).get("checksum")
    if checksum is not None:
        checksum.pop("response_algorithms", None)
