"""A Glacier vault through the 2012 vault API.

A vault names an archive only when its upload completes (an opaque archive
id), knows its archives only through an inventory job (hours), and keeps an
unfinished upload for about 24 hours without activity. What a person can read
about an archive is its description: compact JSON of at most 1,024 printable
ASCII characters, written when the upload starts.

Each part is sent with its tree hash (``checksum=``) and its plain SHA256
(``x-amz-content-sha256``), both computed while the part was spooled. Without
them botocore computes both on the event loop, so a handler registered
before botocore's own puts the SHA256 in place (see :func:`_put_content_sha256`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, aclosing
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from aglacier.backends.aws import AwsSettings, ClientBackend, aws_client
from aglacier.backends.aws_errors import aws_errors
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
from aglacier.backends.glacier_inventory import VaultInventory
from aglacier.backends.limits import VAULT_LIMITS, BackendLimits
from aglacier.backends.naming import utc
from aglacier.backends.parts import ordered_parts
from aglacier.errors import (
    ChecksumRejectedError,
    CompletionUnknownError,
    InvalidRequestError,
    NoSuchArchiveError,
    TransientBackendError,
    UploadNotFoundError,
)

#: The account that owns the credentials.
ACCOUNT_ID = "-"
MAX_DESCRIPTION = 1024
DESCRIPTION_FORMAT = 1
#: The SHA256 (hex) of the part being sent by this task, for :func:`_put_content_sha256`.
_PART_SHA256: ContextVar[str | None] = ContextVar("aglacier_part_sha256", default=None)

_JOB_STATES = {
    "InProgress": RetrievalState.IN_PROGRESS,
    "Succeeded": RetrievalState.READY,
    "Failed": RetrievalState.FAILED,
}


class VaultBackend(ClientBackend):
    """Archives in the Glacier vault ``vault``.

    Takes an open aiobotocore Glacier client (see :func:`~aglacier.backends.aws.aws_client`);
    ``on_close`` releases it (set by :meth:`open`).
    """

    def __init__(
        self,
        client: Any,
        *,
        vault: str,
        max_connections: int,
        on_close: AsyncExitStack | None = None,
    ) -> None:
        super().__init__(client, max_connections=max_connections, on_close=on_close)
        self.vault = vault
        self.region: str = client.meta.region_name
        # First, so that it runs before botocore's add_glacier_checksums, which
        # hashes only what is missing.
        client.meta.events.register_first(
            "before-call.glacier.UploadMultipartPart",
            _put_content_sha256,
            unique_id="aglacier-content-sha256",
        )
        self._inventory = VaultInventory(
            client,
            vault=vault,
            account_id=ACCOUNT_ID,
            url=self.url,
            pages=self._pages,
            errors=self._errors,
        )

    @classmethod
    async def open(cls, settings: AwsSettings, *, vault: str) -> VaultBackend:
        """A backend with its own client, released by :meth:`aclose`."""
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(aws_client("glacier", settings))
            backend = cls(
                client,
                vault=vault,
                max_connections=settings.max_connections,
                on_close=stack.pop_all(),
            )
        return backend

    @property
    def url(self) -> str:
        """``glacier://vault``."""
        return f"glacier://{self.vault}"

    @property
    def limits(self) -> BackendLimits:
        return VAULT_LIMITS

    @property
    def _destination(self) -> str:
        return f"vault {self.vault!r} in {self.region}"

    def _errors(self, action: str, **kwargs: Any) -> Any:
        return aws_errors(action, self._destination, **kwargs)

    def _upload_errors(self, action: str, upload: Upload) -> Any:
        return self._errors(
            action,
            not_found=UploadNotFoundError,
            not_found_message=(
                f"{action}: upload {upload.upload_id} is no longer known to {self._destination} "
                "(expired after 24 hours without activity, aborted, or the vault is gone)"
            ),
        )

    # -- uploads ---------------------------------------------------------------------------

    async def check(self) -> None:
        """DescribeVault: a missing vault or refused credentials fail here."""
        with self._errors(
            f"check {self.url}", not_found_message=f"{self._destination} does not exist"
        ):
            await self._client.describe_vault(accountId=ACCOUNT_ID, vaultName=self.vault)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        """InitiateMultipartUpload with the part size and the archive description."""
        with self._errors(
            f"start an upload to {self.url}",
            not_found_message=f"{self._destination} does not exist",
        ):
            response = await self._client.initiate_multipart_upload(
                accountId=ACCOUNT_ID,
                vaultName=self.vault,
                archiveDescription=archive_description(info),
                partSize=str(info.part_size),
            )
        return Upload(upload_id=response["uploadId"], key=None)

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        """UploadMultipartPart with the part's tree hash and SHA256; the vault checks both."""
        if len(body) != part.size or part.size == 0:
            raise InvalidRequestError(f"part {part.number} has {len(body)} bytes, not {part.size}")
        sent = part.tree_hash.hex()
        action = f"upload part {part.number} to {self.url}"
        token = _PART_SHA256.set(part.sha256.hex())
        try:
            with self._upload_errors(action, upload):
                response = await self._client.upload_multipart_part(
                    accountId=ACCOUNT_ID,
                    vaultName=self.vault,
                    uploadId=upload.upload_id,
                    range=f"bytes {part.offset}-{part.offset + part.size - 1}/*",
                    checksum=sent,
                    body=body,
                )
        finally:
            _PART_SHA256.reset(token)
        echoed = response.get("checksum")
        if echoed is not None and echoed != sent:
            raise ChecksumRejectedError(
                f"{action}: the vault computed tree hash {echoed}, we sent {sent}"
            )
        return UploadedPart(number=part.number, size=part.size, checksum=echoed)

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        """ListParts, every page (``marker``), by part number."""
        parts: dict[int, UploadedPart] = {}
        async for page in self._pages(
            f"list parts of upload {upload.upload_id} in {self.url}",
            "list_parts",
            errors=lambda action: self._upload_errors(action, upload),
            uploadId=upload.upload_id,
        ):
            part_size = int(page["PartSizeInBytes"])
            for item in page.get("Parts", []):
                first, _, last = item["RangeInBytes"].partition("-")
                number = int(first) // part_size
                parts[number] = UploadedPart(
                    number=number,
                    size=int(last) - int(first) + 1,
                    checksum=item.get("SHA256TreeHash"),
                )
        return [parts[n] for n in sorted(parts)]

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        """CompleteMultipartUpload with the archive size and tree hash; the vault checks both."""
        ordered_parts(parts, totals, info.part_size)
        action = f"complete upload {upload.upload_id} in {self.url}"
        sent = totals.tree_hash.hex()
        with self._upload_errors(action, upload):
            response = await self._client.complete_multipart_upload(
                accountId=ACCOUNT_ID,
                vaultName=self.vault,
                uploadId=upload.upload_id,
                archiveSize=str(totals.size),
                checksum=sent,
            )
        echoed = response.get("checksum")
        if echoed is not None and echoed != sent:
            raise ChecksumRejectedError(
                f"{action}: the vault reports tree hash {echoed}, we sent {sent}"
            )
        archive_id: str = response["archiveId"]
        return StoredArchive(
            archive_id=archive_id, location=f"{self.url}/{archive_id}", size=totals.size
        )

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        """``None`` while the vault still lists the upload; otherwise it cannot tell.

        Once a vault has forgotten an upload, it was completed, aborted or expired,
        and only an inventory job (hours, and up to a day behind) lists archives:
        this raises :class:`~aglacier.errors.CompletionUnknownError` then.
        """
        try:
            await self.list_parts(upload)
        except UploadNotFoundError:
            raise CompletionUnknownError(
                f"{self._destination} no longer knows upload {upload.upload_id}: it was "
                "completed, aborted or expired, and a vault lists its archives only "
                "through an inventory job",
                hint="upload the archive again, or wait for the vault's next inventory",
            ) from None
        return None

    async def abort(self, upload: Upload) -> None:
        """AbortMultipartUpload; an unknown upload raises UploadNotFoundError."""
        with self._upload_errors(f"abort upload {upload.upload_id} in {self.url}", upload):
            await self._client.abort_multipart_upload(
                accountId=ACCOUNT_ID, vaultName=self.vault, uploadId=upload.upload_id
            )

    async def list_pending(self) -> list[PendingUpload]:
        """ListMultipartUploads, every page."""
        uploads: list[PendingUpload] = []
        async for page in self._pages(
            f"list unfinished uploads in {self.url}", "list_multipart_uploads"
        ):
            uploads.extend(
                PendingUpload(
                    upload_id=item["MultipartUploadId"],
                    key=None,
                    initiated=_parse_time(item.get("CreationDate")),
                    description=item.get("ArchiveDescription"),
                )
                for item in page.get("UploadsList", [])
            )
        return uploads

    # -- retrieval -------------------------------------------------------------------------

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        """Reuse a job for this archive and tier that is running or ready, else InitiateJob.

        ``days`` does not apply: a vault keeps a job's output for 24 hours.
        """
        existing = await self._find_job(archive_id, tier)
        if existing is not None:
            return existing
        with self._errors(
            f"request archive {archive_id} from {self.url}",
            not_found=NoSuchArchiveError,
            not_found_message=f"archive {archive_id} is not in {self._destination}",
        ):
            response = await self._client.initiate_job(
                accountId=ACCOUNT_ID,
                vaultName=self.vault,
                jobParameters={
                    "Type": "archive-retrieval",
                    "ArchiveId": archive_id,
                    "Tier": str(tier),
                },
            )
        return Retrieval(archive_id, tier, RetrievalState.IN_PROGRESS, job_id=response["jobId"])

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        """DescribeJob: Succeeded is ready, Failed failed, a job the vault forgot expired."""
        job_id = _job_id(retrieval)
        try:
            with self._errors(f"look up job {job_id} in {self.url}", not_found=NoSuchArchiveError):
                job = await self._client.describe_job(
                    accountId=ACCOUNT_ID, vaultName=self.vault, jobId=job_id
                )
        except NoSuchArchiveError:
            return Retrieval(
                retrieval.archive_id,
                retrieval.tier,
                RetrievalState.EXPIRED,
                job_id=job_id,
                detail="the vault no longer knows the job: request a new retrieval",
            )
        return _retrieval_of(job, retrieval.tier)

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        """GetJobOutput for the part's byte range, with the vault's tree hash of that range.

        Part sizes are 1 MiB × 2^n, so every part is a node of the archive's tree
        and the vault sends its tree hash.
        """
        job_id = _job_id(retrieval)
        start = number * part_size
        length = min(part_size, archive_size - start)
        if number < 0 or length <= 0:
            raise InvalidRequestError(f"part {number} is outside archive {retrieval.archive_id}")
        action = f"read part {number} of archive {retrieval.archive_id} from {self.url}"
        with self._errors(
            action,
            not_found=NoSuchArchiveError,
            not_found_message=f"{action}: job {job_id} has expired; request a new retrieval",
        ):
            response = await self._client.get_job_output(
                accountId=ACCOUNT_ID,
                vaultName=self.vault,
                jobId=job_id,
                range=f"bytes={start}-{start + length - 1}",
            )
            async with response["body"] as stream:
                data: bytes = await stream.read()
        if len(data) != length:
            raise TransientBackendError(f"{action}: got {len(data)} of {length} bytes")
        return PartData(number=number, data=data, checksum=response.get("checksum"))

    # -- listing (see glacier_inventory) ----------------------------------------------------

    async def request_inventory(self) -> InventoryJob:
        """Reuse an inventory job that succeeded or is running (ListJobs), else InitiateJob."""
        return await self._inventory.request()

    async def inventory_status(self, job: InventoryJob) -> InventoryJob:
        """DescribeJob: Succeeded is ready, Failed failed, a job the vault forgot expired."""
        return await self._inventory.status(job)

    async def read_inventory(self, job: InventoryJob) -> Inventory:
        """GetJobOutput of the ready job: every archive, aglacier's and foreign."""
        return await self._inventory.read(job)

    # -- helpers ---------------------------------------------------------------------------

    async def _pages(
        self, action: str, operation: str, *, errors: Any = None, **params: Any
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every page of a list operation, following ``Marker``."""
        call = getattr(self._client, operation)
        marker: str | None = None
        seen: set[str] = set()
        while True:
            extra = {"marker": marker} if marker else {}
            with errors(action) if errors else self._errors(action):
                page: dict[str, Any] = await call(
                    accountId=ACCOUNT_ID, vaultName=self.vault, **params, **extra
                )
            yield page
            marker = page.get("Marker")
            if not marker or marker in seen:  # a repeated marker would loop forever
                return
            seen.add(marker)

    async def _find_job(self, archive_id: str, tier: Tier) -> Retrieval | None:
        # aclosing: leaving the pages early must close the generator now, not at GC.
        async with aclosing(self._pages(f"list jobs in {self.url}", "list_jobs")) as pages:
            async for page in pages:
                for job in page.get("JobList", []):
                    if (
                        job.get("Action") == "ArchiveRetrieval"
                        and job.get("ArchiveId") == archive_id
                        and job.get("Tier", "Standard") == str(tier)
                        and job.get("StatusCode") in ("InProgress", "Succeeded")
                        and _whole_archive(job)
                    ):
                        return _retrieval_of(job, tier)
        return None


def _put_content_sha256(params: dict[str, Any], **_: Any) -> None:
    """Give botocore the part's SHA256, so that it does not compute it on the event loop."""
    sha256 = _PART_SHA256.get()
    if sha256 is not None:
        # The exact key botocore's add_glacier_checksums looks for.
        params["headers"]["x-amz-content-sha256"] = sha256


def archive_description(info: ArchiveInfo) -> str:
    """Compact JSON in at most 1,024 printable ASCII characters.

    Non-ASCII is escaped (``\\uXXXX``); a source path too long to fit keeps its
    end, after ``...``, and ``"source_cut": true`` says so.
    """
    document: dict[str, Any] = {
        "aglacier": DESCRIPTION_FORMAT,
        "source": "",
        "host": _fitting(info.host, 200, keep_end=False),
        "created_at": utc(info.created_at).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "part_size": info.part_size,
        "version": _fitting(info.aglacier_version, 40, keep_end=False),
    }
    budget = MAX_DESCRIPTION - len(_compact(document))
    if _escaped_length(info.source) <= budget:
        document["source"] = info.source
    else:
        document["source_cut"] = True
        budget = MAX_DESCRIPTION - len(_compact(document)) - len("...")
        document["source"] = "..." + _fitting(info.source, budget, keep_end=True)
    return _compact(document)


def _fitting(text: str, budget: int, *, keep_end: bool) -> str:
    """The longest end (or start) of ``text`` whose JSON escaping fits in ``budget``."""
    kept: list[str] = []
    for char in reversed(text) if keep_end else text:
        budget -= _escaped_length(char)
        if budget < 0:
            break
        kept.append(char)
    return "".join(reversed(kept) if keep_end else kept)


def _escaped_length(text: str) -> int:
    return len(_compact(text)) - 2  # without the quotes


def _compact(value: object) -> str:
    # ensure_ascii escapes every non-ASCII character (and lone surrogates from
    # undecodable file names) as \uXXXX, and control characters too: printable ASCII.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _job_id(retrieval: Retrieval) -> str:
    if retrieval.job_id is None:
        raise InvalidRequestError(f"the retrieval of {retrieval.archive_id} has no vault job id")
    return retrieval.job_id


def _whole_archive(job: dict[str, Any]) -> bool:
    byte_range = job.get("RetrievalByteRange")
    size = job.get("ArchiveSizeInBytes")
    return byte_range is None or size is None or byte_range == f"0-{int(size) - 1}"


def _retrieval_of(job: dict[str, Any], tier: Tier) -> Retrieval:
    state = _JOB_STATES.get(job.get("StatusCode", ""), RetrievalState.IN_PROGRESS)
    detail = job.get("StatusMessage") if state is RetrievalState.FAILED else None
    if state is RetrievalState.READY and job.get("CompletionDate"):
        detail = f"ready since {job['CompletionDate']}; the output is kept for 24 hours"
    return Retrieval(
        archive_id=job.get("ArchiveId", ""),
        tier=tier,
        state=state,
        job_id=job.get("JobId"),
        detail=detail,
    )
