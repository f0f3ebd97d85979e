"""What only the S3 backend does: its manifest, its own verification, moto's quirks.

The key shape and the manifest's fields are shared with the local folder (test_naming.py).

The behaviour every backend shares is in the conformance suite; these tests run
against moto's S3 server (see ``aws_servers``) and look behind the backend's back
with plain boto3.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aglacier.backends.aws import AwsSettings, aws_client
from aglacier.backends.aws_errors import translate
from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    Backend,
    CompletePart,
    PartChecksums,
    Retrieval,
    RetrievalState,
    Tier,
    Upload,
    UploadedPart,
)
from aglacier.backends.naming import manifest_key
from aglacier.backends.s3 import S3Backend
from aglacier.backends.s3_restore import restore_state
from aglacier.errors import (
    AccessDeniedError,
    AglacierError,
    ChecksumRejectedError,
    CredentialsError,
    ExitCode,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    NotReadyError,
    TransientBackendError,
    UploadNotFoundError,
)
from aglacier.treehash import composite_checksum
from aglacier.units import KiB
from tests.backends.aws_servers import boto3_client, local_settings, open_s3_backend

pytestmark = pytest.mark.anyio

PART = 4 * KiB  # moto's minimum part size is lowered for these tests


def info(source: str = "/home/anna/Photos 2024", *, part_size: int = PART) -> ArchiveInfo:
    return ArchiveInfo(
        source=source,
        host="anna-laptop",
        created_at=datetime(2026, 11, 15, 10, 30, 5, tzinfo=UTC),
        part_size=part_size,
        aglacier_version="1.2.3",
    )


def spool(data: bytes, part_size: int = PART) -> list[PartChecksums]:
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size)):
        body = data[offset : offset + part_size]
        digest = hashlib.sha256(body).digest()
        parts.append(PartChecksums(number, offset, len(body), digest, digest))
    return parts


def totals(data: bytes, parts: Sequence[PartChecksums]) -> ArchiveTotals:
    # The S3 backend stores the tree hash in the manifest without checking it.
    return ArchiveTotals(len(data), hashlib.sha256(data).digest(), b"\x07" * 32, len(parts))


def complete_parts(
    parts: Sequence[PartChecksums], uploaded: Sequence[UploadedPart]
) -> list[CompletePart]:
    etags = {u.number: u.etag for u in uploaded}
    return [CompletePart(p, etags[p.number]) for p in parts]


async def upload_all(
    backend: S3Backend, upload: Upload, data: bytes, parts: Sequence[PartChecksums]
) -> list[UploadedPart]:
    return [await backend.upload_part(upload, p, data[p.offset : p.offset + p.size]) for p in parts]


@pytest.fixture
async def s3(moto_s3_endpoint: str) -> AsyncIterator[S3Backend]:
    bucket = f"aglacier-{secrets.token_hex(6)}"
    async with open_s3_backend(moto_s3_endpoint, bucket) as backend:
        yield backend


def raw_client(backend: S3Backend) -> Any:
    """boto3 on the same server, to look (or tamper) behind the backend's back."""
    return boto3_client("s3", backend._client.meta.endpoint_url)


# --- upload, verification, manifest ------------------------------------------------------


async def test_complete_writes_manifest_and_metadata(s3: S3Backend) -> None:
    data = os.urandom(3 * PART + 100)
    parts = spool(data)
    archive = info("/home/anna/Fotos é")
    upload = await s3.start_upload(archive)
    uploaded = await upload_all(s3, upload, data, parts)
    stored = await s3.complete(
        upload, archive, complete_parts(parts, uploaded), totals(data, parts)
    )

    assert stored.archive_id == upload.key
    shape = r"backups/anna-laptop/home/anna/Fotos_é/20261115T103005Z-[a-z2-7]{6}\.tar\.gpg"
    assert re.fullmatch(shape, stored.archive_id)
    assert stored.location == f"s3://{s3.bucket}/{stored.archive_id}"
    client = raw_client(s3)
    try:
        head = client.head_object(Bucket=s3.bucket, Key=stored.archive_id)
        body = client.get_object(Bucket=s3.bucket, Key=manifest_key(stored.archive_id))
        manifest = json.loads(body["Body"].read())
        manifest_class = body.get("StorageClass", "STANDARD")
    finally:
        client.close()
    assert head["StorageClass"] == "DEEP_ARCHIVE"
    assert head["Metadata"]["source"] == "/home/anna/Fotos%20%C3%A9"
    assert head["Metadata"]["host"] == "anna-laptop"
    assert manifest_class == "STANDARD"
    assert manifest == {
        "format": "aglacier-manifest",
        "format_version": 1,
        "key": stored.archive_id,
        "source": "/home/anna/Fotos é",
        "host": "anna-laptop",
        "created_at": "2026-11-15T10:30:05+00:00",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "tree_hash": "07" * 32,
        "part_size": PART,
        "part_count": 4,
        "storage_class": "DEEP_ARCHIVE",
        "s3_checksum": composite_checksum([p.sha256 for p in parts]),
        "aglacier_version": "1.2.3",
    }


async def test_requests_carry_our_checksum_and_no_payload_hash(s3: S3Backend) -> None:
    """botocore must neither sign the payload nor add a checksum of its own (event loop)."""
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    s3._client.meta.events.register("before-send.s3.UploadPart", record)
    data = os.urandom(PART)
    (part,) = spool(data)
    upload = await s3.start_upload(info())
    await s3.upload_part(upload, part, data)

    (headers,) = sent
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(part.sha256).decode()
    assert [h for h in headers if h.startswith("x-amz-checksum-")] == ["x-amz-checksum-sha256"]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_verification_catches_a_part_that_does_not_match_its_checksum(
    s3: S3Backend,
) -> None:
    """moto never checks ChecksumSHA256: our check of the composite after complete does."""
    data = os.urandom(2 * PART)
    parts = spool(data)
    liar = PartChecksums(1, PART, PART, hashlib.sha256(b"other bytes").digest(), b"")
    upload = await s3.start_upload(info())
    uploaded = [
        await s3.upload_part(upload, parts[0], data[:PART]),
        await s3.upload_part(upload, liar, data[PART:]),
    ]
    with pytest.raises(ChecksumRejectedError, match="checksum") as caught:
        await s3.complete(
            upload, info(), complete_parts([parts[0], liar], uploaded), totals(data, parts)
        )
    assert caught.value.exit_code is ExitCode.INTEGRITY


async def test_verification_catches_a_part_overwritten_behind_our_back(s3: S3Backend) -> None:
    data = os.urandom(2 * PART)
    parts = spool(data)
    upload = await s3.start_upload(info())
    await upload_all(s3, upload, data, parts)
    client = raw_client(s3)
    try:
        client.upload_part(
            Bucket=s3.bucket,
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=2,
            Body=os.urandom(PART),
        )
    finally:
        client.close()
    # With the ETags we were given, S3 itself refuses the part list ...
    stale = [CompletePart(p, md5_etag(data[p.offset : p.offset + p.size])) for p in parts]
    with pytest.raises(ChecksumRejectedError, match="InvalidPart"):
        await s3.complete(upload, info(), stale, totals(data, parts))
    # ... and with the server's current ETags, our own verification does.
    listed = await s3.list_parts(upload)
    with pytest.raises(ChecksumRejectedError, match="parts we sent give"):
        await s3.complete(upload, info(), complete_parts(parts, listed), totals(data, parts))


def md5_etag(data: bytes) -> str:
    """S3's ETag of a part: its MD5, quoted."""
    return f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 (not for security)


def test_composite_checksum_is_s3s() -> None:
    digests = [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]
    whole = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert composite_checksum(digests) == f"{whole}-2"


async def test_find_completed(s3: S3Backend) -> None:
    data = os.urandom(2 * PART)
    parts = spool(data)
    archive = info()
    upload = await s3.start_upload(archive)
    uploaded = await upload_all(s3, upload, data, parts)
    assert await s3.find_completed(upload, archive, totals(data, parts)) is None

    stored = await s3.complete(
        upload, archive, complete_parts(parts, uploaded), totals(data, parts)
    )
    assert await s3.find_completed(upload, archive, totals(data, parts)) == stored
    other = ArchiveTotals(len(data), b"\x00" * 32, b"", len(parts))
    assert await s3.find_completed(upload, archive, other) is None  # the manifest says no

    client = raw_client(s3)
    try:
        client.delete_object(Bucket=s3.bucket, Key=manifest_key(stored.archive_id))
    finally:
        client.close()
    assert await s3.find_completed(upload, archive, totals(data, parts)) is None  # not provably


async def test_find_completed_verifies_after_a_crash_in_complete(s3: S3Backend) -> None:
    """The manifest is written before the complete, with the composite checksum to expect."""
    data = os.urandom(2 * PART)
    parts = spool(data)
    archive = info()
    upload = await s3.start_upload(archive)
    uploaded = await upload_all(s3, upload, data, parts)
    liar = PartChecksums(1, PART, PART, hashlib.sha256(b"other").digest(), b"")
    wrong = [CompletePart(parts[0], uploaded[0].etag), CompletePart(liar, uploaded[1].etag)]
    with pytest.raises(ChecksumRejectedError):
        await s3.complete(upload, archive, wrong, totals(data, parts))
    assert await s3.find_completed(upload, archive, totals(data, parts)) is None

    # A new upload of the same spool; complete writes the manifest, then the process dies
    # after S3 took the complete but before its answer arrived: found, and verified.
    again = await s3.start_upload(archive)
    uploaded = await upload_all(s3, again, data, parts)
    expected = composite_checksum([p.sha256 for p in parts])
    await s3._put_manifest(str(again.key), archive, totals(data, parts), expected)
    client = raw_client(s3)
    try:
        client.complete_multipart_upload(
            Bucket=s3.bucket,
            Key=again.key,
            UploadId=again.upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.number + 1, "ETag": u.etag}
                    for p, u in zip(parts, uploaded, strict=True)
                ]
            },
        )
    finally:
        client.close()
    found = await s3.find_completed(again, archive, totals(data, parts))
    assert found is not None and found.archive_id == again.key


# --- listing -------------------------------------------------------------------------------


async def test_list_parts_follows_pages(moto_s3_endpoint: str) -> None:
    bucket = f"aglacier-{secrets.token_hex(6)}"
    async with open_s3_backend(moto_s3_endpoint, bucket, page_size=25) as s3:
        data = os.urandom(60 * 1024)  # 60 parts: three pages
        parts = spool(data, 1024)
        upload = await s3.start_upload(info(part_size=1024))
        await upload_all(s3, upload, data, parts)
        listed = await s3.list_parts(upload)
    assert [p.number for p in listed] == list(range(60))
    assert [p.size for p in listed] == [1024] * 60


async def test_moto_mispaginates_sparse_parts(s3: S3Backend) -> None:
    """moto uses PartNumberMarker as an index: with gaps, small pages skip parts.

    Real S3 returns the parts after the marker, which our loop follows. With
    S3's page of 1,000 parts, moto's answer is right too (its bug needs a gap
    and more than one page).
    """
    data = os.urandom(12 * 1024)
    parts = spool(data, 1024)
    upload = await s3.start_upload(info(part_size=1024))
    await upload_all(s3, upload, data, parts[::2])  # parts 0, 2, 4, 6, 8, 10

    assert [p.number for p in await s3.list_parts(upload)] == [0, 2, 4, 6, 8, 10]
    s3._bucket.page_size = 2
    # Page 2 starts at index 3 of [1, 3, 5, 7, 9, 11] (1-based) instead of after part 3.
    assert [p.number for p in await s3.list_parts(upload)] == [0, 2, 6, 8]  # moto loses two


async def test_list_pending_follows_pages(s3: S3Backend) -> None:
    # Several uploads share a key, so the pages need both KeyMarker and UploadIdMarker.
    # The backend never starts two at one key, but a retried start whose answer was
    # lost does on S3; here a plain client starts the extra ones.
    uploads = [await s3.start_upload(info(f"/data/{n}")) for n in range(3)]
    started = {u.upload_id for u in uploads}
    keys = [str(u.key) for u in uploads]
    client = raw_client(s3)
    try:
        for key in (keys[0], keys[1], keys[0], keys[2]):
            started.add(client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"])
    finally:
        client.close()
    assert len(started) == 7
    s3._bucket.page_size = 2
    pending = await s3.list_pending()
    assert sorted(p.upload_id for p in pending) == sorted(started)


async def test_list_pending_only_under_the_prefix(s3: S3Backend) -> None:
    mine = await s3.start_upload(info())
    client = raw_client(s3)
    try:
        client.create_multipart_upload(Bucket=s3.bucket, Key="elsewhere/x")
    finally:
        client.close()
    pending = await s3.list_pending()
    assert [(p.upload_id, p.key) for p in pending] == [(mine.upload_id, mine.key)]


# --- errors ------------------------------------------------------------------------------


async def test_unknown_upload_id_is_upload_not_found(s3: S3Backend) -> None:
    """moto answers UploadPart and Complete for an unknown id with HTTP 500."""
    data = os.urandom(PART)
    (part,) = spool(data)
    upload = await s3.start_upload(info())
    gone = Upload("no-such-upload-id", upload.key)
    with pytest.raises(UploadNotFoundError) as caught:
        await s3.upload_part(gone, part, data)
    assert isinstance(caught.value.__cause__, TransientBackendError)  # moto's 500
    assert caught.value.exit_code is ExitCode.RESUMABLE
    with pytest.raises(UploadNotFoundError):
        await s3.complete(gone, info(), [CompletePart(part, '"x"')], totals(data, [part]))
    with pytest.raises(UploadNotFoundError):
        await s3.list_parts(gone)
    await s3.abort(upload)
    with pytest.raises(UploadNotFoundError):
        await s3.abort(upload)


async def test_missing_bucket(moto_s3_endpoint: str) -> None:
    async with await S3Backend.open(local_settings(moto_s3_endpoint), bucket="nope") as s3:
        with pytest.raises(NoSuchDestinationError, match="bucket 'nope' does not exist") as caught:
            await s3.check()
    assert caught.value.exit_code is ExitCode.DESTINATION


@pytest.mark.parametrize("profile", [None, "work"])
async def test_no_credentials(
    profile: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").write_text("[profile work]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert not any(name.startswith("AWS_ACCESS") for name in os.environ)
    with pytest.raises(CredentialsError, match="no AWS credentials found") as caught:
        async with aws_client("s3", AwsSettings(profile=profile)):
            pass
    assert caught.value.exit_code is ExitCode.CREDENTIALS
    assert int(caught.value.exit_code) == 9
    assert f"profile {profile or 'default'!r}" in str(caught.value)
    assert "aws configure" in str(caught.value) and "\n" not in str(caught.value)


async def test_unknown_profile() -> None:
    with pytest.raises(CredentialsError, match="profile 'ghost' does not exist"):
        async with aws_client("s3", AwsSettings(profile="ghost")):
            pass


async def test_client_configuration(moto_s3_endpoint: str) -> None:
    async with aws_client("s3", local_settings(moto_s3_endpoint, concurrency=12)) as client:
        config = client.meta.config
        assert config.max_pool_connections >= 12
        assert config.retries["total_max_attempts"] == 1
        assert config.s3["payload_signing_enabled"] is False
        assert config.request_checksum_calculation == "when_required"
    async with aws_client("s3", AwsSettings(access_key_id="a", secret_access_key="b")) as client:
        assert client.meta.region_name == "us-east-1"  # nothing configured anywhere


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "UploadPart",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDenied", 403, AccessDeniedError),
        ("InvalidAccessKeyId", 403, AccessDeniedError),
        ("SignatureDoesNotMatch", 403, AccessDeniedError),
        ("ExpiredToken", 400, AccessDeniedError),
        ("403", 403, AccessDeniedError),
        ("NoSuchBucket", 404, NoSuchDestinationError),
        ("NoSuchUpload", 404, UploadNotFoundError),
        ("NoSuchKey", 404, NoSuchArchiveError),
        ("SlowDown", 503, TransientBackendError),
        ("RequestTimeout", 400, TransientBackendError),
        ("InternalError", 500, TransientBackendError),
        ("ServiceUnavailable", 503, TransientBackendError),
        ("502", 502, TransientBackendError),
        ("BadDigest", 400, ChecksumRejectedError),
        ("InvalidDigest", 400, ChecksumRejectedError),
        ("XAmzContentSHA256Mismatch", 400, ChecksumRejectedError),
        ("InvalidPart", 400, ChecksumRejectedError),
        ("InvalidObjectState", 403, NotReadyError),
        ("EntityTooSmall", 400, InvalidRequestError),
        ("InvalidArgument", 400, InvalidRequestError),
    ],
)
def test_error_mapping(code: str, status: int, expected: type[AglacierError]) -> None:
    error = translate(
        client_error(code, status, "it\nwent wrong"),
        action="upload part 3 to s3://b/k",
        destination="bucket 'b'",
        not_found=NoSuchArchiveError,
    )
    assert type(error) is expected
    assert "\n" not in str(error)
    assert "bucket 'b'" in str(error) or "s3://b/k" in str(error)


# --- retrieval ---------------------------------------------------------------------------


async def stored_archive(backend: S3Backend, data: bytes) -> str:
    parts = spool(data)
    upload = await backend.start_upload(info())
    uploaded = await upload_all(backend, upload, data, parts)
    stored = await backend.complete(
        upload, info(), complete_parts(parts, uploaded), totals(data, parts)
    )
    return stored.archive_id


async def test_two_runs_in_the_same_second_keep_both_archives(s3: S3Backend) -> None:
    """The key's random suffix: the second archive must not replace the first."""
    first, second = os.urandom(PART), os.urandom(PART + 1)
    keys = [await stored_archive(s3, data) for data in (first, second)]  # same info()
    assert keys[0] != keys[1]
    client = raw_client(s3)
    try:
        for key, data in zip(keys, (first, second), strict=True):
            client.restore_object(Bucket=s3.bucket, Key=key, RestoreRequest={"Days": 1})
            assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data
            manifest = json.loads(
                client.get_object(Bucket=s3.bucket, Key=manifest_key(key))["Body"].read()
            )
            assert manifest["key"] == key and manifest["size"] == len(data)
    finally:
        client.close()


async def test_expedited_is_refused_for_deep_archive(s3: S3Backend) -> None:
    key = await stored_archive(s3, os.urandom(PART))
    with pytest.raises(InvalidRequestError, match="no Expedited"):
        await s3.request_retrieval(key, tier=Tier.EXPEDITED, days=1)


async def test_restore_then_read_parts(s3: S3Backend) -> None:
    data = os.urandom(3 * PART + 7)
    key = await stored_archive(s3, data)
    retrieval = await s3.request_retrieval(key, tier=Tier.BULK, days=2)
    assert retrieval.state is RetrievalState.IN_PROGRESS  # 202: restore started
    again = await s3.request_retrieval(key, tier=Tier.BULK, days=2)
    assert again.state is RetrievalState.READY  # 200: moto restores at once
    status = await s3.retrieval_status(retrieval)
    assert status.state is RetrievalState.READY and "readable until" in (status.detail or "")
    # moto ignores GetObject's PartNumber and sends the whole object: the backend then
    # reads by byte range, and has no part checksum to report.
    for number in range(4):
        part = await s3.read_part(status, number, PART, len(data))
        assert part.data == data[number * PART : (number + 1) * PART]
        assert part.checksum is None
    with pytest.raises(InvalidRequestError):
        await s3.read_part(status, 4, PART, len(data))


async def test_objects_that_need_no_restore_are_ready(moto_s3_endpoint: str) -> None:
    async with open_s3_backend(
        moto_s3_endpoint, f"aglacier-{secrets.token_hex(6)}", storage_class="GLACIER_IR"
    ) as s3:
        key = await stored_archive(s3, os.urandom(PART))
        retrieval = await s3.request_retrieval(key, tier=Tier.EXPEDITED, days=1)
        assert retrieval.state is RetrievalState.READY
        missing = Retrieval("backups/none", Tier.BULK, RetrievalState.IN_PROGRESS)
        with pytest.raises(NoSuchArchiveError):
            await s3.retrieval_status(missing)


@pytest.mark.parametrize(
    ("storage_class", "header", "state"),
    [
        ("DEEP_ARCHIVE", None, RetrievalState.EXPIRED),
        ("DEEP_ARCHIVE", 'ongoing-request="true"', RetrievalState.IN_PROGRESS),
        (
            "GLACIER",
            'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"',
            RetrievalState.READY,
        ),
        ("GLACIER_IR", None, RetrievalState.READY),
    ],
)
def test_restore_header(storage_class: str, header: str | None, state: RetrievalState) -> None:
    assert restore_state(storage_class, header)[0] is state


async def test_is_a_backend(s3: S3Backend) -> None:
    assert isinstance(s3, Backend)
    assert s3.url == f"s3://{s3.bucket}/backups"
    assert s3.max_connections == 4 + 4
    await s3.check()
