"""Verified, resumable downloads from a real local-folder backend into a download spool."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest

from aglacier.backends.base import Tier
from aglacier.backends.local import LocalBackend
from aglacier.errors import IntegrityError
from aglacier.restore.download import MAX_FETCHES, Download, download_path
from aglacier.restore.tracking import request
from aglacier.state import Archive, StateStore
from tests.restore.helpers import MIB, add_archive, add_uploaded_archive

pytestmark = pytest.mark.anyio
SOURCE = Path("/home/me/photos")
KEY = "host/home/me/photos/20260101T000000Z-abcdef.tar.gpg"
DATA = os.urandom(5 * MIB + 77)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "dest"
    (root / KEY).parent.mkdir(parents=True)
    (root / KEY).write_bytes(DATA)
    return root


class Run:
    """One download of the archive at ``KEY``, recording what it said."""

    def __init__(self, store: StateStore, root: Path, archive: Archive, spool: Path) -> None:
        self.store, self.archive, self.spool_dir = store, archive, spool
        self.backend = LocalBackend(root)
        self.warnings: list[str] = []
        self.progress: list[int] = []

    async def download(self, *, stop_after: int | None = None) -> Path:
        tracked = await request(self.store, self.backend, self.archive, tier=Tier.STANDARD, days=1)
        path = download_path(self.spool_dir, tracked.row.id)
        with anyio.CancelScope() as scope:

            def progress(done: int, total: int) -> None:
                self.progress.append(done)
                if stop_after is not None and done >= stop_after:
                    scope.cancel()

            await Download(
                self.backend,
                self.store,
                self.archive,
                tracked.row.id,
                tracked.remote,
                path,
                2,
                progress,
                self.warnings.append,
            ).run()
        return path


async def test_download_is_verified_and_private(tmp_path: Path, folder: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        archive = await add_uploaded_archive(store, folder.as_uri(), KEY, DATA, source=SOURCE)
        path = await Run(store, folder, archive, tmp_path / "spool").download()
        assert path.read_bytes() == DATA
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(await store.download_parts(1)) == 6


async def test_stopped_download_resumes_with_what_is_missing(tmp_path: Path, folder: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        archive = await add_uploaded_archive(store, folder.as_uri(), KEY, DATA, source=SOURCE)
        run = Run(store, folder, archive, tmp_path / "spool")
        row = (await request(store, run.backend, archive, tier=Tier.STANDARD, days=1)).row
        path = download_path(run.spool_dir, row.id)

        async def once(stop_after: int | None) -> None:
            with anyio.CancelScope() as scope:

                def progress(done: int, total: int) -> None:
                    if stop_after is not None and done >= stop_after:
                        scope.cancel()

                remote = (
                    await request(store, run.backend, archive, tier=Tier.STANDARD, days=1)
                ).remote
                await Download(
                    run.backend,
                    store,
                    archive,
                    row.id,
                    remote,
                    path,
                    1,
                    progress,
                    run.warnings.append,
                ).run()

        await once(stop_after=2 * MIB)
        done = await store.download_parts(row.id)
        assert 2 <= len(done) < 6
        # Whatever is recorded is on disk already.
        data = path.read_bytes()
        assert all(
            data[p.offset : p.offset + p.size] == DATA[p.offset : p.offset + p.size] for p in done
        )
        await once(stop_after=None)
        assert path.read_bytes() == DATA


async def test_damaged_storage_fails_after_bounded_reads(tmp_path: Path, folder: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        archive = await add_uploaded_archive(store, folder.as_uri(), KEY, DATA, source=SOURCE)
        damaged = bytearray(DATA)
        damaged[3 * MIB + 10] ^= 0xFF
        (folder / KEY).write_bytes(damaged)
        run = Run(store, folder, archive, tmp_path / "spool")
        with pytest.raises(IntegrityError, match=f"part 3 .* {MAX_FETCHES} times"):
            await run.download()
        assert len(run.warnings) == MAX_FETCHES - 1
        assert 3 not in {p.part_number for p in await store.download_parts(1)}


async def test_archive_not_matching_the_catalog(tmp_path: Path, folder: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        archive = await add_archive(store, folder.as_uri(), KEY, DATA, source=SOURCE)
        damaged = bytearray(DATA)
        damaged[10] ^= 0xFF
        (folder / KEY).write_bytes(damaged)  # no run: only the whole can be checked
        with pytest.raises(IntegrityError, match="not the archive in the catalog"):
            await Run(store, folder, archive, tmp_path / "spool").download()


async def test_spool_damaged_on_disk_is_fetched_again(tmp_path: Path, folder: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        archive = await add_archive(store, folder.as_uri(), KEY, DATA, source=SOURCE)
        run = Run(store, folder, archive, tmp_path / "spool")
        path = await run.download()
        # A crash of the machine after the rows were written: the bytes are gone.
        with path.open("r+b") as spool:
            spool.seek(4 * MIB + 1)
            spool.write(b"\0" * 100)
        tracked = await request(store, run.backend, archive, tier=Tier.STANDARD, days=1)
        await Download(
            run.backend,
            store,
            archive,
            1,
            tracked.remote,
            path,
            2,
            lambda d, t: None,
            run.warnings.append,
        ).run()
        assert path.read_bytes() == DATA
        assert any("changed on disk" in w for w in run.warnings)
