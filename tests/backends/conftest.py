"""Every destination behind one fixture, for one conformance suite (restic's ``suite.go``).

``backend`` is parametrized over a local folder, the vault emulator and a moto S3
server. What differs between them is stated in :class:`BackendTraits` (where a
bad checksum is caught, whether ``find_completed`` can tell, how checksums are
encoded, how many parts cross pages), so that the tests assert each backend's
behaviour instead of skipping.

The helpers compute every digest independently of ``aglacier.treehash`` and the
emulator: ``hashlib`` for SHA256 and botocore's tree hash.
"""

from __future__ import annotations

import hashlib
import io
import random
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anyio
import pytest
from botocore.utils import calculate_tree_hash

from aglacier import __version__
from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    Backend,
    CompletePart,
    PartChecksums,
    Retrieval,
    RetrievalState,
    StoredArchive,
    Upload,
    UploadedPart,
)
from aglacier.backends.glacier import VaultBackend
from aglacier.backends.local import LocalBackend
from aglacier.backends.s3 import S3Backend
from aglacier.backends.s3_bucket import PAGE_SIZE
from aglacier.units import KiB, MiB

# Importing aws_servers registers the ``moto_s3_endpoint`` session fixture for every
# test in this folder, and lowers moto's minimum part size before moto is loaded.
from tests.backends.aws_servers import (
    boto3_client,
    local_settings,
    moto_s3_endpoint,  # noqa: F401 (a fixture)
    open_s3_backend,
    open_vault_backend,
)
from tests.vault_emulator import VaultEmulator

KINDS = ("local", "vault", "s3")
#: A page of S3 listings small enough that a few parts cross several pages.
S3_TEST_PAGE_SIZE = 10


# --- digests, computed without aglacier ---------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tree_hash(data: bytes) -> bytes:
    """Glacier's tree hash, by botocore (a third implementation)."""
    return bytes.fromhex(calculate_tree_hash(io.BytesIO(data)))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash_hex(data: bytes) -> str:
    return tree_hash(data).hex()


def no_checksum(data: bytes) -> None:
    """For servers that report no checksum (moto's ListParts)."""
    return None


# --- an archive as the engine would have spooled it ----------------------------


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible test data."""
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Spooled:
    """Test data cut into parts, with every checksum a backend is given."""

    data: bytes
    part_size: int
    parts: list[PartChecksums]

    @property
    def totals(self) -> ArchiveTotals:
        return ArchiveTotals(
            size=len(self.data),
            sha256=sha256(self.data),
            tree_hash=tree_hash(self.data),
            part_count=len(self.parts),
        )

    def body(self, number: int) -> bytes:
        part = self.parts[number]
        return self.data[part.offset : part.offset + part.size]

    def complete_parts(self, uploaded: Iterable[UploadedPart]) -> list[CompletePart]:
        """The parts for ``complete``, with the etags the server returned."""
        etags = {p.number: p.etag for p in uploaded}
        return [CompletePart(part, etags[part.number]) for part in self.parts]


def spool(data: bytes, part_size: int) -> Spooled:
    parts = []
    for number, offset in enumerate(range(0, max(len(data), 1), part_size)):
        body = data[offset : offset + part_size]
        parts.append(PartChecksums(number, offset, len(body), sha256(body), tree_hash(body)))
    return Spooled(data, part_size, parts)


def archive_info(part_size: int, *, source: str = "/home/alice/Documents") -> ArchiveInfo:
    return ArchiveInfo(
        source=source,
        host="test-host",
        created_at=datetime.now(UTC).replace(microsecond=0),
        part_size=part_size,
        aglacier_version=__version__,
    )


async def upload_parts(
    backend: Backend,
    upload: Upload,
    spooled: Spooled,
    numbers: Sequence[int] | None = None,
    *,
    concurrency: int = 4,
) -> list[UploadedPart]:
    """Upload the given parts (all by default) a few at a time, as the engine does."""
    todo = list(range(len(spooled.parts))) if numbers is None else list(numbers)
    done: dict[int, UploadedPart] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(number: int) -> None:
        async with limiter:
            part = spooled.parts[number]
            done[number] = await backend.upload_part(upload, part, spooled.body(number))

    async with anyio.create_task_group() as tg:
        for number in todo:
            tg.start_soon(one, number)
    return [done[n] for n in sorted(done)]


async def store(backend: Backend, spooled: Spooled) -> StoredArchive:
    """Start, upload every part, complete."""
    info = archive_info(spooled.part_size)
    upload = await backend.start_upload(info)
    uploaded = await upload_parts(backend, upload, spooled)
    return await backend.complete(upload, info, spooled.complete_parts(uploaded), spooled.totals)


async def wait_until_ready(backend: Backend, retrieval: Retrieval) -> Retrieval:
    """Poll a retrieval that the test servers finish at once (or nearly)."""
    with anyio.fail_after(10):
        while retrieval.state is not RetrievalState.READY:
            assert retrieval.state is RetrievalState.IN_PROGRESS, retrieval
            await anyio.sleep(0.02)
            retrieval = await backend.retrieval_status(retrieval)
    return retrieval


# --- what differs between destinations -----------------------------------------


@dataclass(frozen=True)
class BackendTraits:
    """The documented differences between destinations, asserted rather than skipped."""

    kind: str
    part_size: int
    #: Enough parts of ``paged_part_size`` that ``list_parts`` needs more than one page.
    paged_part_count: int
    paged_part_size: int
    #: Where a part whose bytes do not match its checksum is caught: the vault and
    #: the local folder check each part; moto does not, so the S3 backend
    #: catches it by comparing S3's composite checksum after the complete.
    bad_part_caught_by: Literal["upload_part", "complete"]
    #: Whether ``find_completed`` can tell after a complete: a vault knows its
    #: archives only through an inventory, so once the upload is gone it cannot
    #: (and raises CompletionUnknownError).
    find_completed_can_tell: bool
    #: The checksum ``list_parts`` reports for a part's bytes.
    listed_checksum: Callable[[bytes], str | None]
    #: The checksum ``read_part`` reports for a part's bytes.
    read_checksum: Callable[[bytes], str | None]


TRAITS = {
    "local": BackendTraits(
        kind="local",
        part_size=MiB,
        paged_part_count=5,  # a folder has no pages; a few parts suffice
        paged_part_size=MiB,
        bad_part_caught_by="upload_part",
        find_completed_can_tell=True,
        listed_checksum=sha256_hex,
        read_checksum=sha256_hex,
    ),
    "vault": BackendTraits(
        kind="vault",
        part_size=MiB,  # the smallest 1 MiB × 2^n
        paged_part_count=55,  # the vault API's page is 50 parts
        paged_part_size=MiB,
        bad_part_caught_by="upload_part",
        find_completed_can_tell=False,
        listed_checksum=tree_hash_hex,
        read_checksum=tree_hash_hex,
    ),
    "s3": BackendTraits(
        kind="s3",
        part_size=64 * KiB,  # moto's minimum is lowered by aws_servers
        # In pages of S3_TEST_PAGE_SIZE (see the s3_page_size fixture): five pages,
        # the last one short, as with S3's own page of 1,000 parts and 4,321 parts.
        paged_part_count=4 * S3_TEST_PAGE_SIZE + 3,
        paged_part_size=KiB,
        bad_part_caught_by="complete",
        find_completed_can_tell=True,
        listed_checksum=no_checksum,  # moto's ListParts reports no part checksums
        # moto ignores GetObject's PartNumber, so the backend reads byte ranges, which
        # come with no part checksum (real S3 sends the part's base64 SHA256).
        read_checksum=no_checksum,
    ),
}


@dataclass(frozen=True)
class Opened:
    """A backend under test and a way to read an archive's bytes behind its back."""

    backend: Backend
    read_raw: Callable[[StoredArchive], bytes]


@pytest.fixture(params=KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def traits(backend_kind: str) -> BackendTraits:
    return TRAITS[backend_kind]


@pytest.fixture
def s3_page_size() -> int:
    """The S3 backend's page of parts and uploads; a test may parametrize it smaller.

    Only a test that needs it changes it: with gaps in the part numbers, moto
    loses parts across pages (see test_s3_backend.test_moto_mispaginates_sparse_parts).
    """
    return PAGE_SIZE


@pytest.fixture(scope="session")
def vault_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultEmulator]:
    """One emulator for the session; every test has its own vault."""
    with VaultEmulator(tmp_path_factory.mktemp("glacier")) as emulator:
        yield emulator


@pytest.fixture
async def opened(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Opened]:
    opener = {"local": _open_local, "vault": _open_vault, "s3": _open_s3}[backend_kind]
    async with opener(request, tmp_path) as result:
        yield result


@pytest.fixture
def backend(opened: Opened) -> Backend:
    """Each destination in turn: a local folder, the vault emulator, moto's S3."""
    return opened.backend


@pytest.fixture
def read_raw(opened: Opened) -> Callable[[StoredArchive], bytes]:
    return opened.read_raw


@asynccontextmanager
async def _open_local(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    (tmp_path / "backups").mkdir()  # a configured folder must exist
    backend = LocalBackend(tmp_path / "backups")
    await backend.check()

    def read_raw(archive: StoredArchive) -> bytes:
        return (backend.root / archive.archive_id).read_bytes()

    yield Opened(backend, read_raw)
    await backend.aclose()


@asynccontextmanager
async def _open_vault(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    emulator: VaultEmulator = request.getfixturevalue("vault_emulator")
    vault = f"aglacier-test-{secrets.token_hex(6)}"

    def read_raw(archive: StoredArchive) -> bytes:
        return emulator.archive_path(vault, archive.archive_id).read_bytes()

    async with open_vault_backend(emulator.endpoint_url, vault) as backend:
        yield Opened(backend, read_raw)


@asynccontextmanager
async def _open_s3(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opened]:
    endpoint: str = request.getfixturevalue("moto_s3_endpoint")
    page_size: int = request.getfixturevalue("s3_page_size")
    bucket = f"aglacier-test-{secrets.token_hex(6)}"

    def read_raw(archive: StoredArchive) -> bytes:
        client = boto3_client("s3", endpoint)
        try:
            # A DEEP_ARCHIVE object is readable only once restored (moto restores at once).
            client.restore_object(Bucket=bucket, Key=archive.archive_id, RestoreRequest={"Days": 1})
            response = client.get_object(Bucket=bucket, Key=archive.archive_id)
            data: bytes = response["Body"].read()
        finally:
            client.close()
        return data

    async with open_s3_backend(endpoint, bucket, page_size=page_size) as backend:
        yield Opened(backend, read_raw)


@pytest.fixture
async def missing_destination(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    """A backend whose folder, vault or bucket does not exist."""
    name = f"aglacier-missing-{secrets.token_hex(6)}"
    backend: Backend
    if backend_kind == "local":
        backend = LocalBackend(tmp_path / "unmounted" / "backups")
    elif backend_kind == "vault":
        emulator: VaultEmulator = request.getfixturevalue("vault_emulator")
        backend = await VaultBackend.open(local_settings(emulator.endpoint_url), vault=name)
    else:
        endpoint: str = request.getfixturevalue("moto_s3_endpoint")
        backend = await S3Backend.open(local_settings(endpoint), bucket=name)
    try:
        yield backend
    finally:
        await backend.aclose()
