"""Schema 2: the verified parts of a download, kept across crashes and dropped when done."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from aglacier.state import MIGRATIONS, RetrievalKind, RetrievalState, StateStore
from aglacier.state.schema import Migration

pytestmark = pytest.mark.anyio

H = "a" * 64


async def test_download_parts_lifecycle(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    async with StateStore.open(db) as store:
        assert (await store.pragmas())["user_version"] == len(MIGRATIONS) >= 2
        row = await store.add_retrieval(RetrievalKind.ARCHIVE, "file:///d", "Standard")
        other = await store.add_retrieval(RetrievalKind.ARCHIVE, "file:///d", "Standard")
        for n in range(3):
            await store.add_download_part(row.id, n, offset=n * 10, size=10, sha256=H, tree_hash=H)
        await store.add_download_part(other.id, 0, offset=0, size=5, sha256=H, tree_hash=H)
        again = await store.add_download_part(
            row.id, 1, offset=10, size=10, sha256="b" * 64, tree_hash=H
        )
        assert again.sha256 == "b" * 64
    async with StateStore.open(db) as store:  # survives a reopen
        assert [p.part_number for p in await store.download_parts(row.id)] == [0, 1, 2]
        assert await store.forget_download_parts(row.id, [0, 2, 7]) == 2
        assert [p.part_number for p in await store.download_parts(row.id)] == [1]
        done = await store.finish_retrieval(row.id)
        assert done.state is RetrievalState.DONE
        assert await store.download_parts(row.id) == []
        assert len(await store.download_parts(other.id)) == 1
        assert await store.forget_download_parts(other.id) == 1


async def test_bad_rows_are_refused(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        row = await store.add_retrieval(RetrievalKind.ARCHIVE, "file:///d", "Standard")
        with pytest.raises(ValueError, match="refused"):
            await store.add_download_part(row.id, 0, offset=0, size=0, sha256=H, tree_hash=H)
        with pytest.raises(LookupError):
            await store.add_download_part(999, 0, offset=0, size=1, sha256=H, tree_hash=H)


async def test_schema_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    async with StateStore.open(db, migrations=MIGRATIONS[:1]) as store:
        row = await store.add_retrieval(RetrievalKind.ARCHIVE, "file:///d", "Bulk")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    async with StateStore.open(db) as store:
        assert (await store.get_retrieval(row.id)).tier == "Bulk"
        await store.add_download_part(row.id, 0, offset=0, size=1, sha256=H, tree_hash=H)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_migration_is_the_second() -> None:
    assert isinstance(MIGRATIONS[1], Migration) and MIGRATIONS[1].version == 2
