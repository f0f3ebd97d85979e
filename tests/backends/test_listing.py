"""Listing a destination's archives (``ListingBackend``), on every destination.

The same contract as the conformance suite's: a local folder, the vault
emulator and moto's S3, through the fixtures of ``conftest.py``. What only some
destinations have (manifests to damage on S3 and local folders, foreign
archives and inventory jobs on a vault) is tested on those.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import pytest

from aglacier.backends.base import (
    ArchiveInfo,
    Backend,
    Inventory,
    InventoryJob,
    ListingBackend,
    RetrievalState,
    SkipReason,
    StoredArchive,
)
from aglacier.backends.glacier import VaultBackend
from aglacier.backends.local import LocalBackend
from aglacier.backends.retry import RetryingBackend
from aglacier.backends.s3 import S3Backend
from aglacier.errors import (
    ExitCode,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    NotReadyError,
)
from tests.backends.aws_servers import boto3_client, open_vault_backend
from tests.backends.conftest import (
    BackendTraits,
    Spooled,
    archive_info,
    random_bytes,
    sha256,
    spool,
    upload_parts,
)
from tests.vault_emulator import VaultEmulator
from tests.vault_emulator.testing import glacier_client

pytestmark = pytest.mark.anyio


async def take_inventory(backend: Backend) -> Inventory:
    """Request, wait for (the test servers finish at once) and read an inventory."""
    assert isinstance(backend, ListingBackend)
    job = await backend.request_inventory()
    with anyio.fail_after(10):
        while job.state is RetrievalState.IN_PROGRESS:
            await anyio.sleep(0.02)
            job = await backend.inventory_status(job)
    assert job.state is RetrievalState.READY, job
    return await backend.read_inventory(job)


@dataclass(frozen=True)
class Stored:
    archive: StoredArchive
    info: ArchiveInfo
    spooled: Spooled


async def store_as(backend: Backend, info: ArchiveInfo, data: bytes) -> Stored:
    spooled = spool(data, info.part_size)
    upload = await backend.start_upload(info)
    uploaded = await upload_parts(backend, upload, spooled)
    archive = await backend.complete(upload, info, spooled.complete_parts(uploaded), spooled.totals)
    return Stored(archive, info, spooled)


# --- every destination ----------------------------------------------------------


async def test_every_backend_and_the_retry_layer_can_list(backend: Backend) -> None:
    assert isinstance(backend, ListingBackend)
    assert isinstance(RetryingBackend(backend), ListingBackend)


async def test_an_empty_destination_lists_nothing(backend: Backend) -> None:
    inventory = await take_inventory(backend)
    assert inventory.archives == []
    assert inventory.skipped == []


@pytest.mark.parametrize("s3_page_size", [2])  # S3: seven keys in four pages
async def test_the_inventory_describes_every_archive(
    backend: Backend, traits: BackendTraits, s3_page_size: int
) -> None:
    sources = ["/home/alice/Documents", "/home/alice/.config", "/srv/Fotos é 2024"]
    stored = []
    for seed, source in enumerate(sources):
        info = archive_info(traits.part_size, source=source)
        data = random_bytes(traits.part_size + 100 * seed + 1, seed=seed)
        stored.append(await store_as(backend, info, data))
    if traits.kind == "s3":  # a foreign object among the pages
        _put_s3(backend, "backups/notes.txt", b"not ours")

    inventory = await take_inventory(RetryingBackend(backend))

    by_id = {a.archive_id: a for a in inventory.archives}
    assert sorted(by_id) == sorted(s.archive.archive_id for s in stored)
    for item in stored:
        listed = by_id[item.archive.archive_id]
        data = item.spooled.data
        assert (listed.size, listed.tree_hash) == (len(data), item.spooled.totals.tree_hash.hex())
        assert (listed.source, listed.host) == (item.info.source, item.info.host)
        assert (listed.part_size, listed.created_at) == (traits.part_size, item.info.created_at)
        assert listed.sha256 == (None if traits.kind == "vault" else sha256(data).hex())
        assert listed.storage_class == ("DEEP_ARCHIVE" if traits.kind == "s3" else None)
        assert not listed.foreign and listed.notes == ()
    if traits.kind == "s3":
        assert [(s.name, s.reason) for s in inventory.skipped] == [
            ("backups/notes.txt", SkipReason.FOREIGN)
        ]
    else:
        assert inventory.skipped == []
    assert (inventory.taken_at is not None) == (traits.kind == "vault")


async def test_pending_uploads_are_not_archives(backend: Backend, traits: BackendTraits) -> None:
    info = archive_info(traits.part_size)
    spooled = spool(random_bytes(traits.part_size + 1), traits.part_size)
    upload = await backend.start_upload(info)
    await upload_parts(backend, upload, spooled)

    inventory = await take_inventory(backend)

    assert inventory.archives == [] and inventory.skipped == []


async def test_a_missing_destination_cannot_be_listed(missing_destination: Backend) -> None:
    assert isinstance(missing_destination, ListingBackend)
    with pytest.raises(NoSuchDestinationError):
        await take_inventory(missing_destination)


# --- S3 and local folders: manifests beside the archives -----------------------


def _put_s3(backend: Backend, key: str, body: bytes) -> None:
    assert isinstance(backend, S3Backend)
    endpoint = backend._client.meta.endpoint_url
    client = boto3_client("s3", endpoint)
    try:
        client.put_object(Bucket=backend.bucket, Key=key, Body=body)
    finally:
        client.close()


def _delete_s3(backend: Backend, key: str) -> None:
    assert isinstance(backend, S3Backend)
    client = boto3_client("s3", backend._client.meta.endpoint_url)
    try:
        client.delete_object(Bucket=backend.bucket, Key=key)
    finally:
        client.close()


@dataclass(frozen=True)
class Tamper:
    """Write or remove objects behind a backend's back, named as its archive ids are."""

    put: Callable[[str, bytes], None]
    delete: Callable[[str], None]
    name: Callable[[str], str]  # a path under the prefix or folder, as an archive id


@pytest.fixture
def tamper(backend: Backend) -> Tamper:
    if isinstance(backend, LocalBackend):
        root = backend.root

        def put(key: str, body: bytes) -> None:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(body)

        return Tamper(put, lambda key: (root / key).unlink(), lambda path: path)
    assert isinstance(backend, S3Backend)
    return Tamper(
        lambda key, body: _put_s3(backend, key, body),
        lambda key: _delete_s3(backend, key),
        lambda path: f"{backend.prefix}/{path}",
    )


@pytest.mark.parametrize("backend_kind", ["local", "s3"])
async def test_what_is_not_a_whole_archive_is_skipped_with_why(
    backend: Backend, traits: BackendTraits, tamper: Tamper
) -> None:
    size = traits.part_size + 5
    kept, *others = [
        await store_as(
            backend, archive_info(traits.part_size, source=f"/data/{n}"), random_bytes(size, n)
        )
        for n in range(5)
    ]
    gone, resized, unreadable, bare = (o.archive.archive_id for o in others)
    tamper.delete(gone)  # the manifest stays: an upload that never completed
    tamper.put(resized, b"shorter")
    tamper.put(unreadable + ".manifest.json", b"{not json")
    tamper.delete(bare + ".manifest.json")
    tamper.put(tamper.name("README"), b"hello")

    inventory = await take_inventory(backend)

    assert [a.archive_id for a in inventory.archives] == [kept.archive.archive_id]
    assert sorted((s.name, s.reason) for s in inventory.skipped) == sorted(
        [
            (gone + ".manifest.json", SkipReason.INCOMPLETE),
            (resized, SkipReason.MISMATCH),
            (unreadable + ".manifest.json", SkipReason.BAD_MANIFEST),
            (bare, SkipReason.NO_MANIFEST),
            (tamper.name("README"), SkipReason.FOREIGN),
        ]
    )
    mismatch = next(s for s in inventory.skipped if s.reason is SkipReason.MISMATCH)
    assert mismatch.detail == f"7 bytes, but its manifest says {size}"


async def test_a_local_folder_ignores_uploads_and_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()  # a configured folder must exist
    backend = LocalBackend(tmp_path / "backups")
    await backend.check()
    spooled = spool(random_bytes(1000), 1 << 20)
    upload = await backend.start_upload(archive_info(1 << 20))
    await upload_parts(backend, upload, spooled)  # left pending under .uploads
    (backend.root / "host").mkdir()
    (backend.root / "host" / ".x.manifest.json.1a2b.tmp").write_bytes(b"half")
    (backend.root / "host" / "link.tar.gpg").symlink_to("/etc/hostname")

    inventory = await take_inventory(backend)

    assert inventory.archives == [] and inventory.skipped == []


# --- vaults: inventory jobs and archive descriptions ----------------------------


@pytest.fixture
async def vault(vault_emulator: VaultEmulator) -> AsyncIterator[VaultBackend]:
    name = f"aglacier-test-{secrets.token_hex(6)}"
    async with open_vault_backend(vault_emulator.endpoint_url, name) as backend:
        yield backend


def _initiated(emulator: VaultEmulator) -> int:
    return emulator.counters().requests.get("InitiateJob", 0)


async def test_a_vault_reuses_an_inventory_job_it_already_has(
    vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    before = _initiated(vault_emulator)
    vault_emulator.set_job_delay(3600)
    try:
        first = await vault.request_inventory()
        again = await vault.request_inventory()
    finally:
        vault_emulator.set_job_delay(0)
    assert first.state is RetrievalState.IN_PROGRESS and first.job_id
    assert again.job_id == first.job_id and again.requested_at is not None
    assert (await vault.inventory_status(first)).state is RetrievalState.IN_PROGRESS
    with pytest.raises(InvalidRequestError):
        await vault.read_inventory(first)
    assert _initiated(vault_emulator) - before == 1

    vault_emulator.complete_jobs()
    ready = await vault.inventory_status(first)
    assert ready.state is RetrievalState.READY and ready.completed_at is not None
    assert (await vault.request_inventory()).job_id == first.job_id  # the newest ready one
    assert (await vault.read_inventory(ready)).archives == []
    assert _initiated(vault_emulator) - before == 1


async def test_a_vault_never_inventoried_is_not_ready_yet(
    vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    # AWS refuses an inventory job until the vault's first inventory (about a day).
    vault_emulator.faults.inject_error("InitiateJob", "ResourceNotFoundException")
    with pytest.raises(NotReadyError) as raised:
        await vault.request_inventory()
    assert raised.value.exit_code is ExitCode.NOT_READY and "tomorrow" in str(raised.value.hint)


async def test_the_retry_layer_retries_a_failed_inventory_read(
    vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    async def no_sleep(seconds: float) -> None:
        await anyio.lowlevel.checkpoint()

    retrying = RetryingBackend(vault, sleep=no_sleep)
    job = await retrying.request_inventory()
    job = await retrying.inventory_status(job)
    reads = vault_emulator.counters().requests.get("GetJobOutput", 0)
    vault_emulator.faults.inject_error("GetJobOutput", "ServiceUnavailableException")

    assert (await retrying.read_inventory(job)).archives == []
    assert vault_emulator.counters().requests["GetJobOutput"] - reads == 2


async def test_a_vault_job_it_no_longer_knows_has_expired(vault: VaultBackend) -> None:
    unknown = InventoryJob(RetrievalState.READY, job_id="X" * 92)
    assert (await vault.inventory_status(unknown)).state is RetrievalState.EXPIRED
    with pytest.raises(NoSuchArchiveError):
        await vault.read_inventory(unknown)


async def test_a_vault_lists_foreign_archives_and_cut_sources(
    vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    long_source = "/very/long" * 120
    ours = await store_as(vault, archive_info(1 << 20, source=long_source), random_bytes(99))
    client = glacier_client(vault_emulator.endpoint_url)
    foreign = client.upload_archive(
        vaultName=vault.vault, archiveDescription="photos 2019 (old script)", body=b"x" * 10
    )
    bare = client.upload_archive(vaultName=vault.vault, body=b"y" * 20)
    fake = client.upload_archive(
        vaultName=vault.vault, archiveDescription='{"aglacier":1,"source":"/x"}', body=b"z"
    )

    inventory = await take_inventory(vault)

    by_id = {a.archive_id: a for a in inventory.archives}
    assert len(by_id) == 4 and inventory.skipped == []
    listed = by_id[ours.archive.archive_id]
    assert listed.source is not None and listed.source.startswith("...")
    assert long_source.endswith(listed.source[3:]) and len(listed.notes) == 1
    old = by_id[foreign["archiveId"]]
    assert old.foreign and old.description == "photos 2019 (old script)" and old.size == 10
    assert (old.source, old.host, old.part_size, old.sha256) == (None, None, None, None)
    assert by_id[bare["archiveId"]].foreign and by_id[bare["archiveId"]].description == ""
    damaged = by_id[fake["archiveId"]]
    assert damaged.foreign and "aglacier description" in damaged.notes[0]


async def test_an_inventory_date_comes_from_the_vault(vault: VaultBackend) -> None:
    info = replace(archive_info(1 << 20), host="host-é")
    await store_as(vault, info, random_bytes(10))
    inventory = await take_inventory(vault)
    [listed] = inventory.archives
    assert listed.host == "host-é"
    assert inventory.taken_at is not None and inventory.taken_at.tzinfo is not None
