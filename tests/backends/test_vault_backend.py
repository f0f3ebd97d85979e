"""What only the vault backend does, against the strict vault emulator.

The emulator checks every tree hash and SHA256 it is sent, so these tests prove
that the backend sends ours (and that botocore computes none on the event loop).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.utils
import pytest
from botocore.exceptions import ClientError

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
)
from aglacier.backends.glacier import MAX_DESCRIPTION, VaultBackend, archive_description
from aglacier.errors import (
    BackendError,
    ChecksumRejectedError,
    CompletionUnknownError,
    ExitCode,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    TransientBackendError,
    UploadNotFoundError,
)
from aglacier.units import MiB
from tests.backends.aws_servers import local_settings, open_vault_backend
from tests.vault_emulator import VaultEmulator

pytestmark = pytest.mark.anyio


def tree_hash(data: bytes) -> bytes:
    """botocore's tree hash: independent of aglacier's and of the emulator's."""
    return bytes.fromhex(botocore.utils.calculate_tree_hash(io.BytesIO(data)))


def info(source: str = "/home/anna/Documents", part_size: int = MiB) -> ArchiveInfo:
    return ArchiveInfo(
        source=source,
        host="anna-laptop",
        created_at=datetime(2026, 11, 15, 10, 30, 5, tzinfo=UTC),
        part_size=part_size,
        aglacier_version="1.2.3",
    )


def spool(data: bytes, part_size: int = MiB) -> list[PartChecksums]:
    return [
        PartChecksums(
            number,
            offset,
            len(data[offset : offset + part_size]),
            hashlib.sha256(data[offset : offset + part_size]).digest(),
            tree_hash(data[offset : offset + part_size]),
        )
        for number, offset in enumerate(range(0, len(data), part_size))
    ]


def totals(data: bytes, parts: Sequence[PartChecksums]) -> ArchiveTotals:
    return ArchiveTotals(len(data), hashlib.sha256(data).digest(), tree_hash(data), len(parts))


def body(data: bytes, part: PartChecksums) -> bytes:
    return data[part.offset : part.offset + part.size]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultEmulator]:
    with VaultEmulator(tmp_path_factory.mktemp("glacier")) as emulator:
        yield emulator


@pytest.fixture
async def vault(emulator: VaultEmulator) -> AsyncIterator[VaultBackend]:
    emulator.reset()
    async with open_vault_backend(emulator.endpoint_url, f"v-{secrets.token_hex(6)}") as backend:
        yield backend
    emulator.reset()


async def store(vault: VaultBackend, data: bytes) -> str:
    parts = spool(data)
    upload = await vault.start_upload(info())
    for part in parts:
        await vault.upload_part(upload, part, body(data, part))
    stored = await vault.complete(
        upload, info(), [CompletePart(p, None) for p in parts], totals(data, parts)
    )
    return stored.archive_id


# --- description ---------------------------------------------------------------------------


def test_description_is_compact_json() -> None:
    text = archive_description(info("/home/anna/Fotos é"))
    assert json.loads(text) == {
        "aglacier": 1,
        "source": "/home/anna/Fotos é",
        "host": "anna-laptop",
        "created_at": "2026-11-15T10:30:05Z",
        "part_size": MiB,
        "version": "1.2.3",
    }
    assert "\\u00e9" in text
    assert text.count(" ") == 1  # the one in the path: no spaces between items


@pytest.mark.parametrize(
    "source",
    [
        "/home/zoë/" + "/".join(["日本語のフォルダ名"] * 60) + "/end",
        "/data/" + "\U0001f4f7" * 400,  # non-BMP: 12 characters each once escaped
        "/odd/\udcff\x01\x7f" * 200,  # undecodable bytes and control characters
    ],
)
def test_description_fits_with_a_long_non_ascii_source(source: str) -> None:
    text = archive_description(replace(info(source), host="ホスト" * 300))
    assert len(text) <= MAX_DESCRIPTION
    assert all(" " <= c <= "~" for c in text)
    document = json.loads(text)
    assert document["source_cut"] is True
    assert document["source"].startswith("...")
    assert source.endswith(document["source"][3:])
    assert len(document["source"]) > 20  # the budget is used, not thrown away


async def test_the_emulator_accepts_the_longest_description(vault: VaultBackend) -> None:
    upload = await vault.start_upload(info("/é" * 2000))
    (pending,) = await vault.list_pending()
    assert pending.upload_id == upload.upload_id
    assert pending.description == archive_description(info("/é" * 2000))


# --- parts and checksums ---------------------------------------------------------------------


async def test_no_hashing_on_the_event_loop(
    vault: VaultBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's add_glacier_checksums must find both hashes given, and sign with ours."""
    data = os.urandom(2 * MiB + 10)
    parts = spool(data)  # botocore's tree hash, before counting starts
    upload = await vault.start_upload(info())
    calls: list[str] = []
    for name in ("calculate_sha256", "calculate_tree_hash"):
        original = getattr(botocore.utils, name)

        def counting(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(botocore.utils, name, counting)
    original_payload = botocore.auth.SigV4Auth.payload

    def payload(self: Any, request: Any) -> Any:
        calls.append("payload")
        return original_payload(self, request)

    monkeypatch.setattr(botocore.auth.SigV4Auth, "payload", payload)

    for part in parts:
        uploaded = await vault.upload_part(upload, part, body(data, part))
        assert uploaded.checksum == part.tree_hash.hex()
    assert calls == [], calls


async def test_wrong_part_checksums_are_rejected(vault: VaultBackend) -> None:
    data = os.urandom(MiB)
    (part,) = spool(data)
    upload = await vault.start_upload(info())
    wrong_sha = PartChecksums(0, 0, MiB, hashlib.sha256(b"x").digest(), part.tree_hash)
    wrong_tree = PartChecksums(0, 0, MiB, part.sha256, hashlib.sha256(b"x").digest())
    for wrong in (wrong_sha, wrong_tree):
        with pytest.raises(ChecksumRejectedError, match="Checksum mismatch") as caught:
            await vault.upload_part(upload, wrong, data)
        assert caught.value.exit_code is ExitCode.INTEGRITY
        assert vault.vault in str(caught.value)
    await vault.upload_part(upload, part, data)


async def test_wrong_archive_tree_hash_is_rejected(vault: VaultBackend) -> None:
    data = os.urandom(MiB + 1)
    parts = spool(data)
    upload = await vault.start_upload(info())
    for part in parts:
        await vault.upload_part(upload, part, body(data, part))
    wrong = ArchiveTotals(len(data), b"", hashlib.sha256(b"x").digest(), len(parts))
    with pytest.raises(ChecksumRejectedError):
        await vault.complete(upload, info(), [CompletePart(p, None) for p in parts], wrong)


async def test_list_parts_follows_pages(vault: VaultBackend, emulator: VaultEmulator) -> None:
    data = os.urandom(60 * MiB)
    parts = spool(data)
    upload = await vault.start_upload(info())
    for part in parts:
        await vault.upload_part(upload, part, body(data, part))
    listed = await vault.list_parts(upload)
    assert [p.number for p in listed] == list(range(60))
    assert [p.checksum for p in listed] == [p.tree_hash.hex() for p in parts]
    assert emulator.counters().requests["ListParts"] == 2  # 50 parts a page


async def test_list_pending_follows_pages(vault: VaultBackend, emulator: VaultEmulator) -> None:
    started = {(await vault.start_upload(info())).upload_id for _ in range(55)}
    assert {p.upload_id for p in await vault.list_pending()} == started
    assert emulator.counters().requests["ListMultipartUploads"] == 2


# --- the upload's life -----------------------------------------------------------------------


async def test_find_completed_can_only_say_not_yet(
    vault: VaultBackend, emulator: VaultEmulator
) -> None:
    data = os.urandom(MiB)
    parts = spool(data)
    upload = await vault.start_upload(info())
    await vault.upload_part(upload, parts[0], data)
    assert await vault.find_completed(upload, info(), totals(data, parts)) is None
    await vault.complete(upload, info(), [CompletePart(parts[0], None)], totals(data, parts))
    with pytest.raises(CompletionUnknownError, match="inventory") as caught:
        await vault.find_completed(upload, info(), totals(data, parts))
    assert caught.value.exit_code is ExitCode.RESUMABLE


async def test_expired_upload(vault: VaultBackend, emulator: VaultEmulator) -> None:
    data = os.urandom(MiB)
    (part,) = spool(data)
    upload = await vault.start_upload(info())
    assert emulator.forget_upload(upload.upload_id)
    with pytest.raises(UploadNotFoundError, match="no longer known") as caught:
        await vault.upload_part(upload, part, data)
    assert caught.value.exit_code is ExitCode.RESUMABLE
    with pytest.raises(UploadNotFoundError):
        await vault.list_parts(upload)
    with pytest.raises(UploadNotFoundError):
        await vault.complete(upload, info(), [CompletePart(part, None)], totals(data, [part]))


async def test_abort(vault: VaultBackend) -> None:
    upload = await vault.start_upload(info())
    await vault.abort(upload)
    assert await vault.list_pending() == []
    with pytest.raises(UploadNotFoundError):
        await vault.list_parts(upload)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ServiceUnavailableException", TransientBackendError),
        ("ThrottlingException", TransientBackendError),
        ("RequestTimeoutException", TransientBackendError),
        ("LimitExceededException", InvalidRequestError),
        ("MissingParameterValueException", InvalidRequestError),
    ],
)
async def test_faults_are_mapped(
    vault: VaultBackend, emulator: VaultEmulator, code: str, expected: type[BackendError]
) -> None:
    data = os.urandom(MiB)
    (part,) = spool(data)
    upload = await vault.start_upload(info())
    emulator.faults.inject_error("UploadMultipartPart", code)
    with pytest.raises(expected, match=code) as caught:
        await vault.upload_part(upload, part, data)
    assert caught.value.transient is (expected is TransientBackendError)
    await vault.upload_part(upload, part, data)  # the fault was for one request


async def test_dropped_connection_is_transient(
    vault: VaultBackend, emulator: VaultEmulator
) -> None:
    data = os.urandom(MiB)
    (part,) = spool(data)
    upload = await vault.start_upload(info())
    # aiohttp itself resends an idempotent PUT once when a kept-alive connection drops
    # (RFC 9112 §9.3.1), so the emulator drops two.
    emulator.faults.drop_connection("UploadMultipartPart", count=2)
    with pytest.raises(TransientBackendError, match="connection") as caught:
        await vault.upload_part(upload, part, data)
    assert caught.value.exit_code is ExitCode.RESUMABLE
    emulator.faults.drop_connection("CompleteMultipartUpload", stage="response")
    await vault.upload_part(upload, part, data)
    with pytest.raises(TransientBackendError):
        await vault.complete(upload, info(), [CompletePart(part, None)], totals(data, [part]))


async def test_missing_vault(emulator: VaultEmulator) -> None:
    backend = await VaultBackend.open(local_settings(emulator.endpoint_url), vault="nowhere")
    async with backend:
        with pytest.raises(NoSuchDestinationError) as caught:
            await backend.check()
        with pytest.raises(NoSuchDestinationError):
            await backend.start_upload(info())
    assert str(caught.value) == "vault 'nowhere' in us-east-1 does not exist"
    assert caught.value.exit_code is ExitCode.DESTINATION


def test_vault_checksum_message_decides() -> None:
    def error(message: str) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": "InvalidParameterValueException", "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "UploadMultipartPart",
        )

    def mapped(message: str) -> type[Exception]:
        return type(translate(error(message), action="upload", destination="vault 'v'"))

    assert mapped("Checksum mismatch: expected a but was b") is ChecksumRejectedError
    assert mapped("Invalid Content-Range: 'bytes 1-0/*'") is InvalidRequestError


# --- retrieval -------------------------------------------------------------------------------


async def test_retrieval_reads_parts_with_their_tree_hash(vault: VaultBackend) -> None:
    data = os.urandom(3 * MiB + 123)
    archive_id = await store(vault, data)
    retrieval = await vault.request_retrieval(archive_id, tier=Tier.BULK, days=1)
    assert retrieval.job_id is not None
    again = await vault.request_retrieval(archive_id, tier=Tier.BULK, days=1)
    assert again.job_id == retrieval.job_id  # no second job (and no second bill)
    status = await vault.retrieval_status(retrieval)
    assert status.state is RetrievalState.READY
    for number, part in enumerate(spool(data)):
        read = await vault.read_part(status, number, MiB, len(data))
        assert read.data == body(data, part)
        assert read.checksum == part.tree_hash.hex()
    with pytest.raises(InvalidRequestError):
        await vault.read_part(status, 4, MiB, len(data))


async def test_retrieval_edge_cases(vault: VaultBackend, emulator: VaultEmulator) -> None:
    with pytest.raises(NoSuchArchiveError):
        await vault.request_retrieval("no-such-archive", tier=Tier.STANDARD, days=1)
    forgotten = Retrieval("a", Tier.STANDARD, RetrievalState.IN_PROGRESS, job_id="no-such-job")
    assert (await vault.retrieval_status(forgotten)).state is RetrievalState.EXPIRED
    archive_id = await store(vault, os.urandom(MiB))
    emulator.set_job_delay(3600)
    retrieval = await vault.request_retrieval(archive_id, tier=Tier.EXPEDITED, days=1)
    assert (await vault.retrieval_status(retrieval)).state is RetrievalState.IN_PROGRESS
    emulator.set_job_delay(0)


async def test_is_a_backend(vault: VaultBackend, tmp_path: Path) -> None:
    assert isinstance(vault, Backend)
    assert vault.url == f"glacier://{vault.vault}"
    assert vault.limits.power_of_two_mib
    await vault.check()
    assert Upload("x", None).key is None
