"""S3 with a Glacier storage class: the main destination.

Each archive is one object, uploaded in parts with their precomputed SHA256
(``ChecksumSHA256``) and verified after the complete against the composite
checksum S3 reports (``base64(sha256(part digests))-N``): moto, for one, never
checks part checksums, so this check is ours. Beside it, a small JSON manifest
in the STANDARD class records the whole archive's SHA256, tree hash and the
composite checksum to expect, so that a lost catalog can be rebuilt from the
bucket and an archive completed just before a crash can be verified.

Keys a person can read::

    {prefix}/{host}/{source path made safe}/{UTC timestamp}.tar.gpg
    {prefix}/{host}/{source path made safe}/{UTC timestamp}.tar.gpg.manifest.json
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from botocore.exceptions import ClientError

from aglacier.backends.aws import AwsSettings, aws_client
from aglacier.backends.aws_errors import aws_errors
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
from aglacier.backends.limits import S3_LIMITS, BackendLimits
from aglacier.errors import (
    ChecksumRejectedError,
    ConfigError,
    IntegrityError,
    InvalidRequestError,
    NoSuchArchiveError,
    TransientBackendError,
    UploadNotFoundError,
)

#: Storage classes whose objects must be restored before they can be read.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
STORAGE_CLASSES = ARCHIVE_CLASSES | {"GLACIER_IR", "STANDARD", "STANDARD_IA", "ONEZONE_IA"}

#: S3 returns at most 1,000 parts or uploads per page.
PAGE_SIZE = 1000

#: Version of the manifest's JSON layout.
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
#: UTF-8 bytes of a source path in a key (S3 allows 1,024 for the whole key).
MAX_SOURCE_BYTES = 240
MAX_COMPONENT_BYTES = 120
MAX_HOST_BYTES = 63

T = TypeVar("T")

_UNDERSCORES = re.compile("_+")


class S3Backend:
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
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.storage_class = storage_class
        self._max_connections = max_connections
        self._exit_stack = on_close
        self._page_size = page_size
        # Set once a server turns out to ignore GetObject's PartNumber (moto does).
        self._ranged_reads = False
        # The caller checks each part's checksum in a worker thread: botocore must
        # not hash whole parts on the event loop to validate GetObject responses.
        client.meta.events.register(
            "before-call.s3.GetObject",
            _skip_response_validation,
            unique_id="aglacier-skip-response-validation",
        )

    @classmethod
    async def open(
        cls,
        settings: AwsSettings,
        *,
        bucket: str,
        prefix: str = "backups",
        storage_class: str = "DEEP_ARCHIVE",
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
            )
        return backend

    async def __aenter__(self) -> S3Backend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this backend opened it."""
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            await stack.aclose()

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def limits(self) -> BackendLimits:
        return S3_LIMITS

    @property
    def max_connections(self) -> int:
        return self._max_connections

    @property
    def _destination(self) -> str:
        return f"bucket {self.bucket!r}"

    def _errors(self, action: str, **kwargs: Any) -> Any:
        return aws_errors(action, self._destination, **kwargs)

    def _object_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # -- uploads ---------------------------------------------------------------------------

    async def check(self) -> None:
        """HeadBucket: a missing bucket or refused credentials fail here, before staging."""
        with self._errors(
            f"check {self.url}", not_found_message=f"bucket {self.bucket!r} does not exist"
        ):
            await self._client.head_bucket(Bucket=self.bucket)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        """CreateMultipartUpload at the archive's key, with SHA256 part checksums."""
        key = archive_key(self.prefix, info)
        with self._errors(f"start upload to {self._object_url(key)}"):
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
        key = _key_of(upload)
        if len(body) != part.size:
            raise InvalidRequestError(f"part {part.number} has {len(body)} bytes, not {part.size}")
        sent = _b64(part.sha256)
        response = await self._on_upload(
            upload,
            f"upload part {part.number} to {self._object_url(key)}",
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
                f"part {part.number} of {self._object_url(key)}: S3 computed checksum "
                f"{echoed}, we sent {sent}"
            )
        return UploadedPart(
            number=part.number, size=part.size, etag=response["ETag"], checksum=echoed
        )

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        """ListParts, every page, by part number (the server is the truth about parts)."""
        key = _key_of(upload)
        parts: dict[int, UploadedPart] = {}
        marker = 0
        while True:
            page = await self._on_upload(
                upload,
                f"list parts of {self._object_url(key)}",
                lambda: self._client.list_parts(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload.upload_id,
                    PartNumberMarker=marker,  # noqa: B023 (called before the loop moves on)
                    MaxParts=self._page_size,
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
        as it is (a new upload of the same spool overwrites it).
        """
        key = _key_of(upload)
        checksums = _ordered_checksums(parts, totals)
        expected = composite_checksum([c.sha256 for c in checksums])
        await self._put_manifest(key, info, totals, expected)
        await self._on_upload(
            upload,
            f"complete {self._object_url(key)}",
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": [_complete_entry(p) for p in parts_sorted(parts)]},
            ),
        )
        head = await self._head(key)
        if head is None:
            raise TransientBackendError(f"{self._object_url(key)} is not visible after complete")
        problem = _mismatch(head, totals.size, expected)
        if problem is not None:
            raise ChecksumRejectedError(f"{self._object_url(key)}: {problem}")
        return self._stored(key, totals.size)

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        """HEAD the key: the archive, if its manifest is this archive's and S3's size
        and composite checksum are the ones the manifest expects; else ``None``
        (a new upload from the spool then replaces whatever is there)."""
        key = _key_of(upload)
        head = await self._head(key)
        if head is None:
            return None
        manifest = await self._get_manifest(key)
        if manifest is None or manifest.get("sha256") != totals.sha256.hex():
            return None
        if _mismatch(head, totals.size, str(manifest.get("s3_checksum", ""))) is not None:
            return None
        return self._stored(key, totals.size)

    async def abort(self, upload: Upload) -> None:
        """AbortMultipartUpload; an unknown upload raises UploadNotFoundError."""
        key = _key_of(upload)
        await self._on_upload(
            upload,
            f"abort the upload to {self._object_url(key)}",
            lambda: self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload.upload_id
            ),
        )

    async def list_pending(self) -> list[PendingUpload]:
        """ListMultipartUploads under the prefix, every page."""
        return [
            PendingUpload(
                upload_id=item["UploadId"],
                key=item["Key"],
                initiated=item.get("Initiated"),
                description=item["Key"],
            )
            for item in await self._multipart_uploads(f"{self.prefix}/" if self.prefix else "")
        ]

    # -- retrieval -------------------------------------------------------------------------

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        """RestoreObject for GLACIER and DEEP_ARCHIVE objects; others are readable at once."""
        head = await self._head(archive_id)
        if head is None:
            raise NoSuchArchiveError(f"{self._object_url(archive_id)} does not exist")
        storage_class = head.get("StorageClass", "STANDARD")
        if storage_class not in ARCHIVE_CLASSES:
            return Retrieval(archive_id, tier, RetrievalState.READY, detail=storage_class)
        if storage_class == "DEEP_ARCHIVE" and tier is Tier.EXPEDITED:
            raise InvalidRequestError(
                f"{self._object_url(archive_id)} is in DEEP_ARCHIVE, which has no Expedited "
                "retrieval: use Standard (up to 12 hours) or Bulk (up to 48 hours)"
            )
        with self._errors(f"request a restore of {self._object_url(archive_id)}"):
            try:
                response = await self._client.restore_object(
                    Bucket=self.bucket,
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

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        """HeadObject's ``Restore`` header: ongoing, or readable until its expiry date."""
        head = await self._head(retrieval.archive_id)
        if head is None:
            raise NoSuchArchiveError(f"{self._object_url(retrieval.archive_id)} does not exist")
        state, detail = restore_state(head.get("StorageClass", "STANDARD"), head.get("Restore"))
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
            raise InvalidRequestError(f"part {number} is outside {self._object_url(key)}")
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if self._ranged_reads:
            request["Range"] = f"bytes={start}-{start + length - 1}"
        else:
            request["PartNumber"] = number + 1
        action = f"read part {number} of {self._object_url(key)}"
        with self._errors(action, not_found=NoSuchArchiveError):
            response = await self._client.get_object(**request)
            async with response["Body"] as stream:
                data: bytes = await stream.read()
        content_range = response.get("ContentRange")
        if content_range is None and len(data) == archive_size and archive_size != length:
            # The server ignored PartNumber and sent the whole object (moto does):
            # cut the part out, and read by byte range from now on.
            self._ranged_reads = True
            data = data[start : start + length]
        elif content_range is not None:
            expected = f"bytes {start}-{start + length - 1}/{archive_size}"
            if content_range != expected:
                raise IntegrityError(
                    f"{action}: S3 sent {content_range}, expected {expected} "
                    "(was the archive uploaded with another part size?)"
                )
        if len(data) != length:
            raise TransientBackendError(f"{action}: got {len(data)} of {length} bytes")
        checksum = response.get("ChecksumSHA256")
        if checksum is not None and "-" in checksum:  # the object's composite, not the part's
            checksum = None
        return PartData(number=number, data=data, checksum=checksum)

    # -- helpers ---------------------------------------------------------------------------

    async def _on_upload(self, upload: Upload, action: str, call: Callable[[], Awaitable[T]]) -> T:
        """Make a call on an upload; a 500 for an upload that is gone is UploadNotFoundError.

        moto answers an unknown UploadId with HTTP 500 instead of ``NoSuchUpload``,
        and a genuine 500 looks the same: ListMultipartUploads tells them apart.
        """
        gone = f"{action}: the upload {upload.upload_id} no longer exists"
        try:
            with self._errors(action, not_found=UploadNotFoundError, not_found_message=gone):
                return await call()
        except TransientBackendError as exc:
            if _status_of(exc.__cause__) != 500 or await self._upload_exists(upload):
                raise
            raise UploadNotFoundError(gone) from exc

    async def _upload_exists(self, upload: Upload) -> bool:
        uploads = await self._multipart_uploads(_key_of(upload))
        return any(item["UploadId"] == upload.upload_id for item in uploads)

    async def _multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        while True:
            with self._errors(f"list unfinished uploads in {self.url}"):
                page = await self._client.list_multipart_uploads(
                    Bucket=self.bucket, Prefix=prefix, MaxUploads=self._page_size, **markers
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

    async def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with self._errors(f"look up {self._object_url(key)}", not_found=NoSuchArchiveError):
                head: dict[str, Any] = await self._client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                )
        except NoSuchArchiveError:
            return None
        return head

    async def _put_manifest(
        self, key: str, info: ArchiveInfo, totals: ArchiveTotals, s3_checksum: str
    ) -> None:
        document = manifest_document(
            key=key,
            info=info,
            totals=totals,
            storage_class=self.storage_class,
            s3_checksum=s3_checksum,
        )
        body = (json.dumps(document, indent=2, ensure_ascii=True) + "\n").encode()
        with self._errors(f"write the manifest of {self._object_url(key)}"):
            await self._client.put_object(
                Bucket=self.bucket,
                Key=manifest_key(key),
                Body=body,
                StorageClass="STANDARD",
                ContentType="application/json",
                ChecksumSHA256=_b64(hashlib.sha256(body).digest()),
            )

    async def _get_manifest(self, key: str) -> dict[str, Any] | None:
        name = manifest_key(key)
        try:
            with self._errors(f"read {self._object_url(name)}", not_found=NoSuchArchiveError):
                response = await self._client.get_object(Bucket=self.bucket, Key=name)
                async with response["Body"] as stream:
                    body = await stream.read()
        except NoSuchArchiveError:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def _stored(self, key: str, size: int) -> StoredArchive:
        return StoredArchive(archive_id=key, location=self._object_url(key), size=size)


def _status_of(exc: BaseException | None) -> int | None:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return None


def _skip_response_validation(params: dict[str, Any], **_: Any) -> None:
    checksum = params.get("context", {}).get("checksum")
    if checksum is not None:
        checksum.pop("response_algorithms", None)


def _key_of(upload: Upload) -> str:
    if upload.key is None:
        raise InvalidRequestError(f"upload {upload.upload_id} has no S3 key")
    return upload.key


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite_checksum(part_digests: Sequence[bytes]) -> str:
    """S3's checksum of a multipart object: ``base64(sha256(concat digests))-N``."""
    whole = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{_b64(whole)}-{len(part_digests)}"


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


def parts_sorted(parts: Sequence[CompletePart]) -> list[CompletePart]:
    """The parts by number."""
    return sorted(parts, key=lambda p: p.checksums.number)


def _ordered_checksums(parts: Sequence[CompletePart], totals: ArchiveTotals) -> list[PartChecksums]:
    ordered = [p.checksums for p in parts_sorted(parts)]
    numbers = [c.number for c in ordered]
    if numbers != list(range(totals.part_count)):
        raise InvalidRequestError(
            f"complete needs parts 0 to {totals.part_count - 1} once each, got {len(numbers)} parts"
        )
    if any(p.etag is None for p in parts):
        raise InvalidRequestError("complete needs the ETag S3 returned for every part")
    if sum(c.size for c in ordered) != totals.size:
        raise InvalidRequestError("the part sizes do not add up to the archive size")
    return ordered


def _complete_entry(part: CompletePart) -> dict[str, Any]:
    return {
        "PartNumber": part.checksums.number + 1,
        "ETag": part.etag,
        "ChecksumSHA256": _b64(part.checksums.sha256),
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
        "created-at": _utc(info.created_at).isoformat(),
        "aglacier-version": _percent_encoded(info.aglacier_version, 64),
    }


def _percent_encoded(text: str, limit: int) -> str:
    encoded = quote(text.encode("utf-8", "surrogateescape"), safe="/")
    if len(encoded) <= limit:
        return encoded
    cut = encoded[:limit]
    escape = cut.rfind("%", limit - 2)  # do not leave half an escape at the end
    return cut[:escape] if escape >= 0 else cut


# -- keys and manifests ----------------------------------------------------------------------


def archive_key(prefix: str, info: ArchiveInfo) -> str:
    """``{prefix}/{host}/{source path made safe}/{UTC timestamp}.tar.gpg``.

    Readable (letters and digits of any script kept), safe (only letters,
    digits and ``-_.`` in a component; never ``.`` or ``..``) and bounded
    (a long source path keeps its tail, after a hash of the whole path).
    """
    host = _safe_component(info.host, MAX_HOST_BYTES) or "unknown-host"
    stamp = _utc(info.created_at).strftime("%Y%m%dT%H%M%SZ")
    components = [prefix.strip("/"), host, safe_source_path(info.source), f"{stamp}.tar.gpg"]
    return "/".join(c for c in components if c)


def manifest_key(key: str) -> str:
    """The manifest object beside the archive at ``key``."""
    return key + MANIFEST_SUFFIX


def safe_source_path(source: str) -> str:
    """A source path as key components: ``/home/anna/My Photos`` → ``home/anna/My_Photos``."""
    names = [p for p in PurePosixPath(source).parts if p not in ("/", "..")]
    parts = [_safe_component(p, MAX_COMPONENT_BYTES) for p in names]
    parts = [p for p in parts if p] or ["_root_"]
    path = "/".join(parts)
    if len(path.encode()) <= MAX_SOURCE_BYTES:
        return path
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    head = f"_cut_{digest}"
    budget = MAX_SOURCE_BYTES - len(head)
    tail: list[str] = []
    for part in reversed(parts):
        budget -= len(part.encode()) + 1
        if budget < 0:
            break
        tail.insert(0, part)
    return "/".join([head, *tail])


def _safe_component(text: str, max_bytes: int) -> str:
    text = unicodedata.normalize("NFC", text)
    # Anything but a letter, a digit, "-" or "." becomes "_", and runs of "_" one.
    safe = _UNDERSCORES.sub("_", "".join(c if c.isalnum() or c in "-." else "_" for c in text))
    if safe.strip(".") == "":
        return "_" if safe else ""  # never a "." or ".." component
    encoded = safe.encode()[:max_bytes]
    return encoded.decode(errors="ignore")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def manifest_document(
    *, key: str, info: ArchiveInfo, totals: ArchiveTotals, storage_class: str, s3_checksum: str
) -> dict[str, Any]:
    """What the manifest object says: enough to rebuild a catalog entry from the bucket.

    It is written before the complete: a manifest without its archive is an
    upload that has not completed (yet).
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
        "storage_class": storage_class,
        "s3_checksum": s3_checksum,
        "aglacier_version": info.aglacier_version,
    }


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
