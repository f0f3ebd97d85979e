"""Opening the state database: inspect first, then connect, configure and migrate.

Nothing is written to a file before it has proved to be ours: its header is
read with plain file I/O (random bytes and truncated files never reach
SQLite), then SQLite reads it read-only — with ``immutable=1`` when no
``-wal`` content exists, so that not even ``-wal``/``-shm`` companions are
created beside a foreign file. Only then is it opened read-write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import aiosqlite
import anyio

from aglacier.errors import AglacierError, StateDamagedError

from .files import (
    DAMAGED_HINT,
    create_private_file,
    ensure_private_dir,
    narrow_modes,
    read_header,
    wal_has_frames,
)
from .schema import (
    APPLICATION_ID,
    Identity,
    Migration,
    check_identity,
    fetch_one,
    latest_version,
    migrate,
    read_identity,
)

#: STRICT tables need 3.37 (RETURNING, used by the store, needs 3.35).
MIN_SQLITE = (3, 37, 0)

#: How long a statement waits for another connection's lock (a reader's
#: checkpoint, a second process between the run lock and its own work).
BUSY_TIMEOUT = 10.0


async def connect_writable(path: Path, migrations: Sequence[Migration]) -> aiosqlite.Connection:
    """Open (creating if missing) the state database for writing, at the latest schema."""
    _check_sqlite()
    latest = latest_version(migrations)
    with _translate_errors(path):
        existed = await anyio.to_thread.run_sync(_prepare_writable, path)
    if existed:
        await inspect(path, latest)
    conn = await _connect(path, "rw")
    try:
        with _translate_errors(path):
            await _configure(conn, path)
            await migrate(conn, path, migrations)
        await anyio.to_thread.run_sync(narrow_modes, path)
    except BaseException:
        await close(conn)
        raise
    return conn


async def connect_readonly(path: Path, migrations: Sequence[Migration]) -> aiosqlite.Connection:
    """Open the state database for reading, never writing to the file.

    A missing, blank or older-schema file is read through an in-memory copy
    brought up to the latest schema, so callers see one schema only.
    """
    _check_sqlite()
    latest = latest_version(migrations)
    if not await anyio.Path(path).exists():
        return await _memory_copy(None, path, migrations)
    await inspect(path, latest)
    conn = await _connect(path, "ro")
    try:
        with _translate_errors(path):
            await conn.execute("PRAGMA query_only = ON")
            identity = await read_identity(conn)
            check_identity(identity, path, latest)
            if identity.user_version < latest:
                copy = await _memory_copy(conn, path, migrations)
                await close(conn)
                return copy
    except BaseException:
        await close(conn)
        raise
    return conn


async def inspect(path: Path, latest: int) -> None:
    """Raise :class:`StateDamagedError` unless ``path`` is a sound aglacier database or blank."""
    with _translate_errors(path):
        has_wal = await anyio.to_thread.run_sync(wal_has_frames, path)
        header = await anyio.to_thread.run_sync(partial(read_header, path, whole=not has_wal))
    if header is None and not has_wal:
        return  # an empty file: a first open that stopped before writing
    if header is not None and header.application_id not in (0, APPLICATION_ID):
        # Decided from the header alone: SQLite never opens this file.
        check_identity(Identity(header.application_id, header.user_version, ()), path, latest)
    # Without -wal content the main file is the whole database: read it as
    # immutable so that SQLite creates no -wal/-shm beside a foreign file.
    conn = await _connect(path, "ro" if has_wal else "ro&immutable=1")
    try:
        with _translate_errors(path):
            identity = await read_identity(conn)
            check_identity(identity, path, latest)
            problems = [row[0] for row in await conn.execute_fetchall("PRAGMA quick_check")]
    finally:
        await close(conn)
    if problems != ["ok"]:
        raise StateDamagedError(
            f"the state file {path} is damaged: {problems[0]}", hint=DAMAGED_HINT
        )


async def close(conn: aiosqlite.Connection) -> None:
    """Close ``conn`` even while the caller is being cancelled."""
    with anyio.CancelScope(shield=True):
        await conn.close()


def _prepare_writable(path: Path) -> bool:
    """Make the folder and, if missing, the 0600 file; return whether it existed."""
    ensure_private_dir(path.parent)
    try:
        create_private_file(path)
    except FileExistsError:
        return True
    return False


async def _connect(path: Path, mode: str) -> aiosqlite.Connection:
    with _translate_errors(path):
        conn = await aiosqlite.connect(
            _uri(path, mode), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT
        )
    conn.row_factory = aiosqlite.Row
    return conn


def _uri(path: Path, mode: str) -> str:
    # mode=rw/ro, never rwc: SQLite must not create the file itself (we create it 0600).
    return f"{path.absolute().as_uri()}?mode={mode}"


async def _configure(conn: aiosqlite.Connection, path: Path) -> None:
    # journal_mode cannot change inside a transaction and then reports the old
    # mode instead of failing: check the answer.
    (mode,) = await fetch_one(conn, "PRAGMA journal_mode = WAL")
    if str(mode).lower() != "wal":
        raise AglacierError(
            f"cannot use write-ahead logging for the state file {path} (journal mode {mode})",
            hint="Keep the state folder on a local file system.",
        )
    # Both are per connection: FULL makes each commit durable on its own.
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute("PRAGMA foreign_keys = ON")


async def _memory_copy(
    source: aiosqlite.Connection | None, path: Path, migrations: Sequence[Migration]
) -> aiosqlite.Connection:
    # check_same_thread=False: the backup runs in the source connection's thread.
    mem = await aiosqlite.connect(":memory:", isolation_level=None, check_same_thread=False)
    mem.row_factory = aiosqlite.Row
    try:
        if source is not None:
            await source.backup(mem)
        await mem.execute("PRAGMA foreign_keys = ON")
        await migrate(mem, path, migrations)
        await mem.execute("PRAGMA query_only = ON")
    except BaseException:
        await close(mem)
        raise
    return mem


@contextmanager
def _translate_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's and the OS's errors while opening into one-line errors naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB":
            raise StateDamagedError(
                f"the state file {path} is damaged: {exc}", hint=DAMAGED_HINT
            ) from exc
        raise AglacierError(f"cannot open the state file {path}: {exc}") from exc
    except OSError as exc:  # a folder we may not create, a file we may not read
        raise AglacierError(f"cannot open the state file {path}: {exc.strerror}") from exc


def _check_sqlite() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        needed = ".".join(map(str, MIN_SQLITE))
        raise AglacierError(
            f"aglacier needs SQLite {needed} or newer; Python uses {sqlite3.sqlite_version}"
        )
