"""The state store against real SQLite files: settings, refusal of files not ours, lifecycle."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aglacier.errors import StateDamagedError
from aglacier.state import (
    APPLICATION_ID,
    MIGRATIONS,
    Archive,
    LogLevel,
    Migration,
    RecordNotFoundError,
    RetrievalKind,
    RetrievalState,
    RunState,
    StateConflictError,
    StateStore,
)

pytestmark = pytest.mark.anyio

SOURCE = Path("/home/alice/photos")
DEST = "s3://bucket/prefix"
MIB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio only


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.sqlite3"


def hexdigest(char: str) -> str:
    return char * 64


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    """The file's bytes and mtime, and the folder's listing: what "untouched" means."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """A permissive umask, to show the modes do not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


async def make_run(store: StateStore, source: Path = SOURCE, parts: int = 3) -> int:
    run = await store.create_run(source, DEST, part_size=MIB, host="host1")
    for number in range(parts):
        await store.add_part(run.id, number, number * MIB, MIB, hexdigest("a"), f"{number:064x}")
    return run.id


# --- opening: settings, modes, migrations ----------------------------------------


async def test_fresh_database_settings_and_modes(db: Path, umask_zero: None) -> None:
    async with StateStore.open(db) as store:
        assert await store.pragmas() == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "foreign_keys": 1,
            "user_version": len(MIGRATIONS),
            "application_id": APPLICATION_ID,
        }
        await make_run(store)
        companions = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in companions)
        assert [mode(p) for p in companions] == [0o600, 0o600]
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600


async def test_existing_folder_keeps_its_mode_and_wide_file_is_narrowed(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    db = folder / "state.sqlite3"
    async with StateStore.open(db):
        pass
    db.chmod(0o644)
    async with StateStore.open(db):
        pass
    assert mode(folder) == 0o755  # never changed: not ours to decide
    assert mode(db) == 0o600


async def test_reopen_keeps_data(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        await store.log(LogLevel.INFO, "run.created", "hello", run_id=run_id)
    async with StateStore.open(db) as store:
        run = await store.get_run(run_id)
        assert run.source == SOURCE
        assert len(await store.parts(run_id)) == 3
        assert [e.event for e in await store.log_entries()] == ["run.created"]


NEXT = len(MIGRATIONS) + 1  # the first version this code does not know
V2 = Migration(NEXT, "test: add runs.note", ("ALTER TABLE runs ADD COLUMN note TEXT",))


async def test_migration_to_a_newer_schema_keeps_data(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
    async with StateStore.open(db, migrations=(*MIGRATIONS, V2)) as store:
        assert (await store.pragmas())["user_version"] == NEXT
        assert (await store.get_run(run_id)).source == SOURCE
    assert raw_query(db, "SELECT note FROM runs") == [(None,)]


async def test_failed_migration_leaves_the_previous_schema(db: Path) -> None:
    async with StateStore.open(db) as store:
        await make_run(store)
    broken = Migration(
        NEXT, "test: half good", ("ALTER TABLE runs ADD COLUMN note TEXT", "NONSENSE")
    )
    with pytest.raises(StateDamagedError, match=rf"could not upgrade .* to schema {NEXT}"):
        async with StateStore.open(db, migrations=(*MIGRATIONS, broken)):
            pass
    assert raw_query(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    columns = [row[1] for row in raw_query(db, "PRAGMA table_info(runs)")]
    assert "note" not in columns


async def test_migrations_must_be_numbered_in_order(db: Path) -> None:
    with pytest.raises(ValueError, match=f"migration {NEXT} is at position 1"):
        async with StateStore.open(db, migrations=(V2,)):
            pass


@pytest.mark.parametrize("blank", ["empty file", "sqlite header only"])
async def test_blank_file_is_initialised(db: Path, blank: str) -> None:
    db.parent.mkdir()
    if blank == "empty file":
        await anyio.Path(db).touch()  # a first open that died before SQLite wrote anything
    else:
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # writes the first page
    async with StateStore.open(db) as store:
        assert (await store.pragmas())["application_id"] == APPLICATION_ID


async def test_newer_database_is_refused_untouched(db: Path) -> None:
    async with StateStore.open(db, migrations=(*MIGRATIONS, V2)) as store:
        await make_run(store)
    before = snapshot(db)
    for opener in (StateStore.open, StateStore.open_readonly):
        with pytest.raises(StateDamagedError, match="created by a newer aglacier") as caught:
            async with opener(db):
                pass
        assert str(db) in str(caught.value)
        assert snapshot(db) == before


# --- files that are not ours: refused, never modified ----------------------------


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(3 * 4096))


def _short(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00 but nothing else")


def _bad_page_size(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x00\x07" + bytes(4096 - 18))


def _foreign_tables(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('bob')")
        conn.commit()


def _foreign_wal(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.commit()


def _foreign_application_id(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA application_id = 305419896")  # 0x12345678, no tables
        conn.commit()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_random_bytes, "not an SQLite database"),
        (_short, "not an SQLite database"),
        (_bad_page_size, "truncated or damaged"),
        (_foreign_tables, "another application's"),
        (_foreign_wal, "another application's"),
        (_foreign_application_id, "another application's"),
    ],
    ids=[
        "random bytes",
        "short",
        "bad page size",
        "foreign tables",
        "foreign wal",
        "foreign application id",
    ],
)
async def test_file_not_ours_is_refused_untouched(db: Path, make: object, message: str) -> None:
    db.parent.mkdir()
    assert callable(make)
    make(db)
    before = snapshot(db)
    for opener in (StateStore.open, StateStore.open_readonly):
        with pytest.raises(StateDamagedError, match=message) as caught:
            async with opener(db):
                pass
        assert str(db) in str(caught.value)
        assert snapshot(db) == before  # same bytes, same mtime, no -wal/-shm created


async def _filled_database(db: Path) -> bytes:
    async with StateStore.open(db) as store:
        run_id = await make_run(store, parts=200)
        for _ in range(200):
            await store.log(LogLevel.DEBUG, "test.fill", "x" * 200, run_id=run_id)
    # Closing the last connection checkpoints the WAL into the main file.
    assert not db.with_name(db.name + "-wal").exists()
    return await anyio.Path(db).read_bytes()


@pytest.mark.parametrize("cut", ["half, page aligned", "last page", "mid page", "no page count"])
async def test_truncated_database_is_refused_untouched(db: Path, cut: str) -> None:
    data = await _filled_database(db)
    pages = len(data) // 4096
    size = {
        "half, page aligned": pages // 2 * 4096,
        "last page": (pages - 1) * 4096,
        "mid page": len(data) // 2 + 100,
        "no page count": pages // 2 * 4096,
    }[cut]
    truncated = bytearray(data[:size])
    if cut == "no page count":
        # Without the header's page count only SQLite's own check can tell.
        truncated[28:32] = bytes(4)
    await anyio.Path(db).write_bytes(bytes(truncated))
    before = snapshot(db)
    with pytest.raises(StateDamagedError, match=r"truncated|damaged") as caught:
        async with StateStore.open(db):
            pass
    assert str(db) in str(caught.value)
    assert snapshot(db) == before


async def test_damaged_page_is_refused(db: Path) -> None:
    data = bytearray(await _filled_database(db))
    pages = len(data) // 4096
    middle = pages // 2 * 4096
    data[middle : middle + 4096] = b"\xa5" * 4096  # a b-tree page turned to noise
    await anyio.Path(db).write_bytes(bytes(data))
    before = snapshot(db)
    with pytest.raises(StateDamagedError, match="damaged"):
        async with StateStore.open(db):
            pass
    assert snapshot(db) == before


# --- runs and parts --------------------------------------------------------------


async def test_run_lifecycle(db: Path) -> None:
    async with StateStore.open(db) as store:
        run = await store.create_run(
            SOURCE,
            DEST,
            part_size=MIB,
            host="host1",
            estimated_size=3 * MIB,
            storage_class="DEEP_ARCHIVE",
            spool_path=Path("/var/spool/1.gpg"),
        )
        assert run.state is RunState.PLANNED
        assert (run.upload_id, run.archive_size, run.finished_at) == (None, None, None)
        assert await store.unfinished_run_for(SOURCE, DEST) == run

        await store.set_run_state(run.id, RunState.STAGING)
        for number in range(3):
            await store.add_part(run.id, number, number * MIB, MIB, hexdigest("a"), hexdigest("b"))
        run = await store.set_upload(run.id, "upload-1", "prefix/photos.gpg")
        assert (run.upload_id, run.remote_key) == ("upload-1", "prefix/photos.gpg")
        part = await store.mark_part_uploaded(run.id, 1, etag='"e1"')
        assert part.uploaded and part.etag == '"e1"'
        run = await store.set_staged(run.id, 3 * MIB, hexdigest("c"), hexdigest("d"))
        assert run.state is RunState.STAGED and run.archive_size == 3 * MIB
        assert [p.uploaded for p in await store.parts(run.id)] == [False, True, False]

        await store.mark_part_uploaded(run.id, 0)
        await store.mark_part_uploaded(run.id, 2)
        await store.set_run_state(run.id, RunState.COMPLETING)
        archive = await store.complete_run(run.id, "prefix/photos.gpg", manifest={"v": 1})
        assert (archive.run_id, archive.size, archive.sha256) == (run.id, 3 * MIB, hexdigest("c"))
        assert archive.storage_class == "DEEP_ARCHIVE" and archive.manifest == {"v": 1}

        done = await store.get_run(run.id)
        assert done.state is RunState.DONE and done.finished_at is not None
        assert await store.unfinished_runs() == []
        assert await store.unfinished_run_for(SOURCE, DEST) is None
        assert await store.last_done_run(SOURCE, DEST) == done
        assert await store.archives(SOURCE) == [archive]
        # A retried completion is harmless; another archive id is not.
        assert await store.complete_run(run.id, "prefix/photos.gpg") == archive
        with pytest.raises(StateConflictError):
            await store.complete_run(run.id, "other")


async def test_add_part_is_idempotent_and_refuses_other_values(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store, parts=0)
        first = await store.add_part(run_id, 0, 0, MIB, hexdigest("a"), hexdigest("b"))
        assert await store.add_part(run_id, 0, 0, MIB, hexdigest("a"), hexdigest("b")) == first
        with pytest.raises(StateConflictError, match=r"part 0 of run .* other values"):
            await store.add_part(run_id, 0, 0, MIB, hexdigest("f"), hexdigest("b"))
        with pytest.raises(RecordNotFoundError):
            await store.add_part(run_id + 1, 0, 0, MIB, hexdigest("a"), hexdigest("b"))
        with pytest.raises(StateConflictError):  # not hex: a CHECK constraint
            await store.add_part(run_id, 1, MIB, MIB, "z" * 64, hexdigest("b"))
        assert await store.parts(run_id) == [first]


async def test_acknowledgements_belong_to_an_upload_id(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        with pytest.raises(StateConflictError, match="no upload id"):
            await store.mark_part_uploaded(run_id, 0)
        with pytest.raises(StateConflictError, match="no upload id"):
            await store.set_uploaded_parts(run_id, {0: None})
        with pytest.raises(RecordNotFoundError):
            await store.set_uploaded_parts(999, {})
        await store.set_upload(run_id, "u1", None)
        with pytest.raises(RecordNotFoundError):
            await store.mark_part_uploaded(run_id, 9)
        await store.mark_part_uploaded(run_id, 0)
        await store.set_upload(run_id, "u1", "key")  # same id: acks kept
        assert [p.uploaded for p in await store.parts(run_id)] == [True, False, False]
        await store.set_upload(run_id, "u2", "key")  # new upload: acks forgotten
        assert not any(p.uploaded for p in await store.parts(run_id))

        await store.set_uploaded_parts(run_id, {0: "e0", 2: None})
        assert [p.etag for p in await store.parts(run_id)] == ["e0", None, None]
        assert [p.uploaded for p in await store.parts(run_id)] == [True, False, True]
        with pytest.raises(StateConflictError, match=r"no parts \[7\]"):
            await store.set_uploaded_parts(run_id, {1: None, 7: None})
        assert [p.uploaded for p in await store.parts(run_id)] == [True, False, True]

        await store.set_uploaded_parts(run_id, {})
        assert not any(p.uploaded for p in await store.parts(run_id))
        await store.mark_part_uploaded(run_id, 0)
        await store.reset_parts_uploaded(run_id)
        assert not any(p.uploaded for p in await store.parts(run_id))
        await store.mark_part_uploaded(run_id, 1)
        run = await store.clear_upload(run_id)
        assert (run.upload_id, run.remote_key) == (None, None)
        assert not any(p.uploaded for p in await store.parts(run_id))


async def test_staged_size_must_match_the_parts(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        with pytest.raises(StateConflictError, match="parts hold"):
            await store.set_staged(run_id, 3 * MIB + 1, hexdigest("c"), hexdigest("d"))
        await store.set_staged(run_id, 3 * MIB, hexdigest("c"), hexdigest("d"))
        await store.set_staged(run_id, 3 * MIB, hexdigest("c"), hexdigest("d"))  # repeat: fine
        with pytest.raises(StateConflictError, match="is staged"):
            await store.set_staged(run_id, 3 * MIB, hexdigest("e"), hexdigest("d"))

        gap = await make_run(store, source=Path("/other"), parts=0)
        await store.add_part(gap, 0, 0, MIB, hexdigest("a"), hexdigest("b"))
        await store.add_part(gap, 2, 2 * MIB, MIB, hexdigest("a"), hexdigest("b"))
        with pytest.raises(StateConflictError, match="does not follow"):
            await store.set_staged(gap, 2 * MIB, hexdigest("c"), hexdigest("d"))
        assert (await store.get_run(gap)).state is RunState.PLANNED  # rolled back
        with pytest.raises(RecordNotFoundError):
            await store.set_staged(999, 0, hexdigest("c"), hexdigest("d"))


async def test_delete_parts_returns_the_run_to_planned(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        await store.set_upload(run_id, "u1", None)
        await store.set_staged(run_id, 3 * MIB, hexdigest("c"), hexdigest("d"))
        run = await store.delete_parts(run_id)
        assert (run.state, run.archive_size, run.archive_sha256) == (RunState.PLANNED, None, None)
        assert run.upload_id == "u1"
        assert await store.parts(run_id) == []


async def test_one_unfinished_run_per_source_and_destination(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        with pytest.raises(StateConflictError, match=f"run {run_id} of .* is unfinished"):
            await store.create_run(SOURCE, DEST, part_size=MIB, host="h")
        await store.create_run(SOURCE, "s3://elsewhere", part_size=MIB, host="h")
        await store.set_run_state(run_id, RunState.ABORTED, error="user abort")
        again = await store.create_run(SOURCE, DEST, part_size=MIB, host="h")
        assert [r.id for r in await store.unfinished_runs()] == [run_id + 1, again.id]
        with pytest.raises(ValueError, match="absolute"):
            await store.create_run(Path("relative"), DEST, part_size=MIB, host="h")


async def test_finished_run_never_changes(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        with pytest.raises(ValueError, match="complete_run"):
            await store.set_run_state(run_id, RunState.DONE)
        with pytest.raises(StateConflictError, match="only a staged run"):
            await store.complete_run(run_id, "key")
        failed = await store.set_run_state(run_id, RunState.FAILED, error="access denied")
        assert failed.error == "access denied" and failed.finished_at is not None
        for change in (
            store.set_run_state(run_id, RunState.STAGING),
            store.set_upload(run_id, "u", None),
            store.clear_upload(run_id),
            store.delete_parts(run_id),
        ):
            with pytest.raises(StateConflictError, match="is failed"):
                await change
        with pytest.raises(RecordNotFoundError):
            await store.get_run(999)
        with pytest.raises(RecordNotFoundError):
            await store.set_run_state(999, RunState.STAGING)


# --- catalog, retrievals, log ----------------------------------------------------


WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def catalog(store: StateStore, destination: str, archive_id: str, sha: str = "a") -> Archive:
    return await store.add_archive(
        SOURCE,
        destination,
        archive_id,
        size=10,
        sha256=hexdigest(sha),
        tree_hash=hexdigest("b"),
        part_size=MIB,
        host="h",
        created_at=WHEN,
    )


async def test_archives_are_unique_per_destination(db: Path) -> None:
    async with StateStore.open(db) as store:
        first = await catalog(store, DEST, "k1")
        assert first.created_at == WHEN and first.run_id is None
        assert await catalog(store, DEST, "k1") == first  # the same again: harmless
        with pytest.raises(StateConflictError, match="already recorded"):
            await catalog(store, DEST, "k1", sha="f")
        other = await catalog(store, "vault:x", "k1")
        assert await store.find_archive("vault:x", "k1") == other
        assert await store.get_archive(first.id) == first
        assert await store.archives(destination=DEST) == [first]
        assert await store.archives(Path("/nothing")) == []
        with pytest.raises(RecordNotFoundError):
            await store.get_archive(999)

        run_id = await make_run(store)
        await store.set_staged(run_id, 3 * MIB, hexdigest("c"), hexdigest("d"))
        with pytest.raises(StateConflictError, match="UNIQUE"):
            await store.complete_run(run_id, "k1")  # DEST already has an archive k1
        assert (await store.get_run(run_id)).state is RunState.STAGED


async def test_retrievals(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        await store.set_staged(run_id, 3 * MIB, hexdigest("c"), hexdigest("d"))
        archive = await store.complete_run(run_id, "archive-1")
        fetch = await store.add_retrieval(
            RetrievalKind.ARCHIVE, DEST, "Bulk", archive_row=archive.id, job_id="job-1"
        )
        inventory = await store.add_retrieval(RetrievalKind.INVENTORY, "vault:v", "Standard")
        assert (fetch.state, fetch.ready_at, inventory.archive_row) == (
            RetrievalState.REQUESTED,
            None,
            None,
        )
        ready = await store.update_retrieval(fetch.id, RetrievalState.READY, detail={"eta": 0})
        assert ready.ready_at is not None and ready.job_id == "job-1"
        done = await store.update_retrieval(
            fetch.id, RetrievalState.DONE, download_path=Path("/tmp/out.gpg")
        )
        assert (done.ready_at, done.detail) == (ready.ready_at, {"eta": 0})
        assert done.download_path == Path("/tmp/out.gpg")
        assert await store.retrievals() == [done, inventory]
        assert await store.retrievals(active_only=True) == [inventory]
        assert await store.retrievals(destination=DEST) == [done]
        assert await store.get_retrieval(inventory.id) == inventory
        with pytest.raises(RecordNotFoundError):
            await store.update_retrieval(999, RetrievalState.FAILED)
        with pytest.raises(RecordNotFoundError):
            await store.add_retrieval(RetrievalKind.ARCHIVE, DEST, "Bulk", archive_row=999)


async def test_log_keeps_insertion_order(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        for index in range(5):
            await store.log(
                LogLevel.INFO,
                "test.step",
                f"step {index}",
                run_id=run_id if index % 2 else None,
                detail={"index": index},
            )
        await store.log(LogLevel.ERROR, "test.end", "end")
        entries = await store.log_entries()
        assert [e.message for e in entries] == [*(f"step {i}" for i in range(5)), "end"]
        assert entries[1].detail == {"index": 1} and entries[-1].level is LogLevel.ERROR
        assert [e.message for e in await store.log_entries(limit=2)] == ["step 4", "end"]
        assert [e.message for e in await store.log_entries(run_id=run_id)] == ["step 1", "step 3"]
        with pytest.raises(RecordNotFoundError):
            await store.log(LogLevel.INFO, "x", "y", run_id=999)


# --- read-only access --------------------------------------------------------------


async def test_readonly_reads_while_a_writer_is_open(db: Path) -> None:
    async with StateStore.open(db) as writer:
        run_id = await make_run(writer)
        async with StateStore.open_readonly(db) as reader:
            assert reader.readonly
            assert (await reader.get_run(run_id)).id == run_id
            await writer.log(LogLevel.INFO, "test.later", "written after the reader opened")
            assert [e.event for e in await reader.log_entries()] == ["test.later"]
            with pytest.raises(RuntimeError, match="read-only"):
                await reader.log(LogLevel.INFO, "x", "y")


async def test_readonly_of_a_missing_file_is_an_empty_state(db: Path) -> None:
    async with StateStore.open_readonly(db) as store:
        assert await store.unfinished_runs() == []
        assert await store.archives() == []
    assert not db.parent.exists()


async def test_readonly_upgrades_an_older_schema_in_memory(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
    before = snapshot(db)
    async with StateStore.open_readonly(db, migrations=(*MIGRATIONS, V2)) as store:
        assert (await store.pragmas())["user_version"] == NEXT
        assert (await store.get_run(run_id)).id == run_id
    assert snapshot(db)[:2] == before[:2]
    assert raw_query(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]


# --- durability and cancellation ---------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import anyio
    from aglacier.state import StateStore

    async def main() -> None:
        store_cm = StateStore.open(Path(sys.argv[1]))
        store = await store_cm.__aenter__()  # never closed: killed below
        run = await store.create_run(Path("/src"), "local:/dst", part_size=1048576, host="h")
        await store.add_part(run.id, 0, 0, 1048576, "a" * 64, "b" * 64)
        await store.set_upload(run.id, "upload-1", None)
        await store.mark_part_uploaded(run.id, 0)
        os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main)
    """
)


async def test_committed_state_survives_kill_9(db: Path) -> None:
    result = await anyio.run_process([sys.executable, "-c", _KILLED_WRITER, str(db)], check=False)
    assert result.returncode == -9, result.stderr.decode()
    assert db.with_name(db.name + "-wal").stat().st_size > 0  # not checkpointed
    async with StateStore.open(db) as store:
        (run,) = await store.unfinished_runs()
        assert run.upload_id == "upload-1"
        assert [p.uploaded for p in await store.parts(run.id)] == [True]


class _CancellingAcks(dict[int, str | None]):
    """Acknowledgements that cancel the caller's scope while the store reads them.

    The store reads them inside its transaction, after its first statement,
    so the cancellation arrives in the middle of the transaction, every time.
    """

    def __init__(self, scope: anyio.CancelScope, acks: dict[int, str | None]) -> None:
        super().__init__(acks)
        self.scope = scope

    def items(self) -> Any:
        self.scope.cancel()
        return super().items()


async def test_cancelled_transaction_is_all_or_nothing(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store, parts=4)
        await store.set_upload(run_id, "u1", None)
        await store.set_uploaded_parts(run_id, {0: "e0", 1: "e1"})
        before = await store.parts(run_id)
        with anyio.CancelScope() as scope:
            await store.set_uploaded_parts(run_id, _CancellingAcks(scope, {2: "e2", 3: "e3"}))
        assert scope.cancelled_caught
        # Neither the reset that ran before the cancellation nor the new acks stuck.
        assert await store.parts(run_id) == before
        # No transaction was left open: the next write commits on its own.
        await store.log(LogLevel.INFO, "test.after", "still fine")
    assert raw_query(db, "SELECT count(*) FROM log") == [(1,)]


async def test_cancelled_at_begin_leaves_no_transaction_open(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store)
        await store.set_upload(run_id, "u1", None)
        for delay_steps in range(6):  # cancel at successive await points of one call
            scope = anyio.CancelScope()

            async def cancel_soon(steps: int, scope: anyio.CancelScope = scope) -> None:
                for _ in range(steps):
                    await anyio.lowlevel.checkpoint()
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_soon, delay_steps)
                with scope:
                    await store.set_uploaded_parts(run_id, {0: None, 1: None})
            uploaded = {p.uploaded for p in await store.parts(run_id) if p.part_number < 2}
            assert len(uploaded) == 1, f"torn write when cancelled after {delay_steps} steps"
            # Committed at once, visible to another connection: no transaction left open.
            await store.log(LogLevel.INFO, "test.step", str(delay_steps))
            count = raw_query(db, "SELECT count(*) FROM log")
            assert count == [(delay_steps + 1,)], f"left open after {delay_steps} steps"


async def test_concurrent_tasks_share_the_store(db: Path) -> None:
    async with StateStore.open(db) as store:
        run_id = await make_run(store, parts=40)
        await store.set_upload(run_id, "u1", None)

        async def ack(number: int) -> None:
            await store.mark_part_uploaded(run_id, number, etag=str(number))

        async with anyio.create_task_group() as group:
            for number in range(40):
                group.start_soon(ack, number)
            group.start_soon(store.set_staged, run_id, 40 * MIB, hexdigest("c"), hexdigest("d"))
        parts = await store.parts(run_id)
        assert [p.etag for p in parts] == [str(n) for n in range(40)]
        assert (await store.get_run(run_id)).state is RunState.STAGED
