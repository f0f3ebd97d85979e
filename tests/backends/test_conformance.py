"""The Backend contract, checked the same way on every destination (see conftest.py).

Each test runs against a local folder, the vault emulator and moto's S3. Where
the destinations differ on purpose, :class:`BackendTraits` says how, and the
test asserts that behaviour for each of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest

from aglacier.backends.base import (
    Backend,
    PartChecksums,
    RetrievalState,
    StoredArchive,
    Tier,
    Upload,
)
from aglacier.errors import (
    ChecksumRejectedError,
    CompletionUnknownError,
    ExitCode,
    InvalidRequestError,
    NoSuchDestinationError,
    UploadNotFoundError,
)
from tests.backends.conftest import (
    S3_TEST_PAGE_SIZE,
    BackendTraits,
    Spooled,
    archive_info,
    random_bytes,
    sha256,
    spool,
    store,
    tree_hash,
    upload_parts,
    wait_until_ready,
)

pytestmark = pytest.mark.anyio

#: Archive sizes as a function of the part size.
SHAPES: dict[str, Callable[[int], int]] = {
    "one small part": lambda part_size: 1000,
    "whole parts": lambda part_size: 2 * part_size,
    "short last part": lambda part_size: 2 * part_size + part_size // 3,
}


async def test_check_accepts_the_destination(backend: Backend) -> None:
    await backend.check()


async def test_a_missing_destination_fails_fast(
    missing_destination: Backend, traits: BackendTraits
) -> None:
    with pytest.raises(NoSuchDestinationError):
        await missing_destination.check()
    with pytest.raises(NoSuchDestinationError):
        await missing_destination.start_upload(archive_info(traits.part_size))


@pytest.mark.parametrize("shape", SHAPES)
async def test_stored_archive_holds_the_bytes_sent(
    backend: Backend,
    traits: BackendTraits,
    read_raw: Callable[[StoredArchive], bytes],
    shape: str,
) -> None:
    spooled = spool(random_bytes(SHAPES[shape](traits.part_size)), traits.part_size)
    stored = await store(backend, spooled)
    assert stored.size == len(spooled.data)
    assert read_raw(stored) == spooled.data
    assert await _read_back(backend, stored, spooled) == spooled.data


async def test_retrieval_lifecycle_and_verified_part_reads(
    backend: Backend, traits: BackendTraits
) -> None:
    spooled = spool(random_bytes(3 * traits.part_size - 7, seed=3), traits.part_size)
    stored = await store(backend, spooled)

    requested = await backend.request_retrieval(stored.archive_id, tier=Tier.STANDARD, days=1)
    assert requested.archive_id == stored.archive_id
    assert requested.tier is Tier.STANDARD
    assert requested.state in (RetrievalState.IN_PROGRESS, RetrievalState.READY)
    status = await backend.retrieval_status(requested)
    assert status.archive_id == stored.archive_id
    ready = await wait_until_ready(backend, status)

    for number in (1, 2, 0):  # out of order: each read is a ranged read of its own
        part = await backend.read_part(ready, number, traits.part_size, len(spooled.data))
        assert part.number == number
        assert part.data == spooled.body(number)
        assert part.checksum == traits.read_checksum(part.data)


async def test_list_parts_after_a_partial_upload(backend: Backend, traits: BackendTraits) -> None:
    spooled = spool(random_bytes(3 * traits.part_size + 10, seed=4), traits.part_size)
    upload = await backend.start_upload(archive_info(traits.part_size))
    await upload_parts(backend, upload, spooled, [0, 2, 3])

    listed = await backend.list_parts(upload)

    assert [p.number for p in listed] == [0, 2, 3]
    assert [p.size for p in listed] == [spooled.parts[n].size for n in (0, 2, 3)]
    for part in listed:
        assert part.checksum == traits.listed_checksum(spooled.body(part.number))


@pytest.mark.parametrize("s3_page_size", [S3_TEST_PAGE_SIZE])
async def test_list_parts_returns_every_page(
    backend: Backend, traits: BackendTraits, s3_page_size: int
) -> None:
    part_size = traits.paged_part_size
    count = traits.paged_part_count
    if traits.kind == "s3":  # S3 lists in pages of s3_page_size: cross four boundaries
        assert count > 4 * s3_page_size
    spooled = spool(random_bytes((count + 1) * part_size, seed=5), part_size)
    upload = await backend.start_upload(archive_info(part_size))
    uploaded = await upload_parts(backend, upload, spooled, range(count), concurrency=8)

    listed = await backend.list_parts(upload)

    assert [p.number for p in listed] == list(range(count))
    assert {p.size for p in listed} == {part_size}
    assert [p.etag for p in listed] == [p.etag for p in uploaded]


async def test_uploading_a_part_again_is_harmless(
    backend: Backend, traits: BackendTraits, read_raw: Callable[[StoredArchive], bytes]
) -> None:
    spooled = spool(random_bytes(traits.part_size + 100, seed=6), traits.part_size)
    info = archive_info(traits.part_size)
    upload = await backend.start_upload(info)
    first = await backend.upload_part(upload, spooled.parts[0], spooled.body(0))
    again = await backend.upload_part(upload, spooled.parts[0], spooled.body(0))
    last = await backend.upload_part(upload, spooled.parts[1], spooled.body(1))
    assert again.etag == first.etag

    listed = await backend.list_parts(upload)
    assert [p.number for p in listed] == [0, 1]

    parts = spooled.complete_parts([again, last])
    stored = await backend.complete(upload, info, parts, spooled.totals)
    assert read_raw(stored) == spooled.data


async def test_list_pending_shows_an_unfinished_upload(
    backend: Backend, traits: BackendTraits
) -> None:
    spooled = spool(random_bytes(2 * traits.part_size, seed=7), traits.part_size)
    upload = await backend.start_upload(archive_info(traits.part_size))
    await upload_parts(backend, upload, spooled, [0])

    pending = {p.upload_id: p for p in await backend.list_pending()}

    assert upload.upload_id in pending
    assert pending[upload.upload_id].key == upload.key


async def test_finished_upload_is_no_longer_pending(
    backend: Backend, traits: BackendTraits
) -> None:
    spooled = spool(random_bytes(100, seed=8), traits.part_size)
    info = archive_info(traits.part_size)
    upload = await backend.start_upload(info)
    uploaded = await upload_parts(backend, upload, spooled)
    await backend.complete(upload, info, spooled.complete_parts(uploaded), spooled.totals)

    assert upload.upload_id not in {p.upload_id for p in await backend.list_pending()}
    with pytest.raises(UploadNotFoundError):
        await backend.list_parts(upload)


async def test_abort_drops_the_upload(backend: Backend, traits: BackendTraits) -> None:
    spooled = spool(random_bytes(2 * traits.part_size, seed=9), traits.part_size)
    upload = await backend.start_upload(archive_info(traits.part_size))
    await upload_parts(backend, upload, spooled, [0])

    await backend.abort(upload)

    assert upload.upload_id not in {p.upload_id for p in await backend.list_pending()}
    with pytest.raises(UploadNotFoundError):
        await backend.list_parts(upload)
    with pytest.raises(UploadNotFoundError):
        await backend.upload_part(upload, spooled.parts[1], spooled.body(1))


async def test_unknown_upload_id_is_upload_not_found(
    backend: Backend, traits: BackendTraits
) -> None:
    spooled = spool(random_bytes(100, seed=10), traits.part_size)
    real = await backend.start_upload(archive_info(traits.part_size))
    unknown = Upload(upload_id=secrets.token_urlsafe(24), key=real.key)

    with pytest.raises(UploadNotFoundError):
        await backend.upload_part(unknown, spooled.parts[0], spooled.body(0))
    with pytest.raises(UploadNotFoundError):
        await backend.list_parts(unknown)


async def test_a_part_that_does_not_match_its_checksum_is_rejected(
    backend: Backend, traits: BackendTraits
) -> None:
    spooled = spool(random_bytes(2 * traits.part_size, seed=11), traits.part_size)
    info = archive_info(traits.part_size)
    upload = await backend.start_upload(info)
    body = spooled.body(1)
    damaged = bytes([body[0] ^ 1]) + body[1:]  # as if a bit flipped on the way
    claimed = spooled.parts[1]
    sent = PartChecksums(claimed.number, claimed.offset, claimed.size, *_digests(body))
    uploaded = await upload_parts(backend, upload, spooled, [0])

    if traits.bad_part_caught_by == "upload_part":
        with pytest.raises(ChecksumRejectedError):
            await backend.upload_part(upload, sent, damaged)
        assert [p.number for p in await backend.list_parts(upload)] == [0]
        return
    uploaded.append(await backend.upload_part(upload, sent, damaged))
    with pytest.raises(ChecksumRejectedError):
        await backend.complete(upload, info, spooled.complete_parts(uploaded), spooled.totals)


async def test_complete_refuses_missing_and_misshapen_parts(
    backend: Backend, traits: BackendTraits, read_raw: Callable[[StoredArchive], bytes]
) -> None:
    spooled = spool(random_bytes(2 * traits.part_size + 5, seed=13), traits.part_size)
    info = archive_info(traits.part_size)
    upload = await backend.start_upload(info)
    parts = spooled.complete_parts(await upload_parts(backend, upload, spooled))
    first = parts[0].checksums
    short = replace(parts[0], checksums=replace(first, size=first.size - 1))

    for wrong in (parts[:2], parts[1:], [*parts, parts[2]], [short, *parts[1:]]):
        with pytest.raises(InvalidRequestError):
            await backend.complete(upload, info, wrong, spooled.totals)

    stored = await backend.complete(upload, info, list(reversed(parts)), spooled.totals)
    assert read_raw(stored) == spooled.data  # nothing was sent: the upload is whole


async def test_find_completed(backend: Backend, traits: BackendTraits) -> None:
    spooled = spool(random_bytes(traits.part_size + 1, seed=12), traits.part_size)
    info = archive_info(traits.part_size)
    upload = await backend.start_upload(info)
    uploaded = await upload_parts(backend, upload, spooled)
    # While the upload is pending, every destination knows the archive is not there.
    assert await backend.find_completed(upload, info, spooled.totals) is None

    parts = spooled.complete_parts(uploaded)
    stored = await backend.complete(upload, info, parts, spooled.totals)

    if traits.find_completed_can_tell:
        assert await backend.find_completed(upload, info, spooled.totals) == stored
    else:
        with pytest.raises(CompletionUnknownError) as caught:
            await backend.find_completed(upload, info, spooled.totals)
        assert caught.value.exit_code is ExitCode.RESUMABLE


def _digests(data: bytes) -> tuple[bytes, bytes]:
    return sha256(data), tree_hash(data)


async def _read_back(backend: Backend, stored: StoredArchive, spooled: Spooled) -> bytes:
    retrieval = await backend.request_retrieval(stored.archive_id, tier=Tier.BULK, days=1)
    retrieval = await wait_until_ready(backend, retrieval)
    size = len(spooled.data)
    parts = [
        await backend.read_part(retrieval, n, spooled.part_size, size)
        for n in range(len(spooled.parts))
    ]
    return b"".join(p.data for p in parts)
