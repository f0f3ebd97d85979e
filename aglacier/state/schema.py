"""The state schema, its migrations, and how a database file proves it is ours.

``PRAGMA user_version`` holds the number of the last migration applied; each
migration runs in one ``BEGIN IMMEDIATE`` transaction together with the
``user_version`` bump, so a crash leaves the file at one version or the next,
never between. ``PRAGMA application_id`` marks the file as aglacier's: it is
set by the first migration, so an SQLite file without it (and not empty) is
another application's and is left alone. Policy: migrations are append-only,
never edited once released; see ``docs/state-schema.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from aglacier.errors import StateDamagedError

#: ``PRAGMA application_id`` of every aglacier state file: ASCII "aGla".
APPLICATION_ID = 0x61476C61


@dataclass(frozen=True)
class Migration:
    """One schema step: ``statements`` take the file from ``version - 1`` to ``version``."""

    version: int
    summary: str
    statements: tuple[str, ...]


_HEX64 = "length({0}) = 64 AND {0} NOT GLOB '*[^0-9a-f]*'"
_FINISHED = "('done', 'aborted', 'failed')"

_V1 = Migration(
    version=1,
    summary="initial schema: runs, parts, archives, retrievals, log",
    statements=(
        f"PRAGMA application_id = {APPLICATION_ID}",
        f"""CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            destination TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('planned', 'staging', 'staged', 'completing', 'done', 'aborted', 'failed')),
            upload_id TEXT,
            remote_key TEXT,
            part_size INTEGER NOT NULL CHECK (part_size > 0),
            estimated_size INTEGER CHECK (estimated_size >= 0),
            spool_path TEXT,
            archive_size INTEGER CHECK (archive_size >= 0),
            archive_sha256 TEXT CHECK ({_HEX64.format("archive_sha256")}),
            archive_tree_hash TEXT CHECK ({_HEX64.format("archive_tree_hash")}),
            storage_class TEXT,
            host TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            error TEXT,
            CHECK ((archive_size IS NULL) = (archive_sha256 IS NULL)
                AND (archive_sha256 IS NULL) = (archive_tree_hash IS NULL)),
            CHECK ((finished_at IS NULL) = (state NOT IN {_FINISHED})),
            CHECK (state NOT IN ('staged', 'completing', 'done') OR archive_size IS NOT NULL)
        ) STRICT""",
        # At most one unfinished run per source and destination: a second
        # backup must resume or abort the first, not race it.
        # (finished_at IS NULL is the same as an unfinished state: see the CHECK.)
        """CREATE UNIQUE INDEX runs_unfinished ON runs (source, destination)
            WHERE finished_at IS NULL""",
        f"""CREATE TABLE parts (
            run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            part_number INTEGER NOT NULL CHECK (part_number >= 0),
            "offset" INTEGER NOT NULL CHECK ("offset" >= 0),
            size INTEGER NOT NULL CHECK (size > 0),
            sha256 TEXT NOT NULL CHECK ({_HEX64.format("sha256")}),
            tree_hash TEXT NOT NULL CHECK ({_HEX64.format("tree_hash")}),
            spooled_at TEXT NOT NULL,
            uploaded_at TEXT,
            etag TEXT,
            PRIMARY KEY (run_id, part_number),
            CHECK (etag IS NULL OR uploaded_at IS NOT NULL)
        ) STRICT, WITHOUT ROWID""",
        f"""CREATE TABLE archives (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
            source TEXT NOT NULL,
            destination TEXT NOT NULL,
            archive_id TEXT NOT NULL,
            size INTEGER NOT NULL CHECK (size >= 0),
            sha256 TEXT NOT NULL CHECK ({_HEX64.format("sha256")}),
            tree_hash TEXT NOT NULL CHECK ({_HEX64.format("tree_hash")}),
            part_size INTEGER NOT NULL CHECK (part_size > 0),
            storage_class TEXT,
            host TEXT NOT NULL,
            created_at TEXT NOT NULL,
            description TEXT,
            manifest TEXT,
            UNIQUE (destination, archive_id)
        ) STRICT""",
        "CREATE INDEX archives_by_source ON archives (source, created_at)",
        # One archive per run; also the index the run_id foreign key needs.
        "CREATE UNIQUE INDEX archives_by_run ON archives (run_id) WHERE run_id IS NOT NULL",
        """CREATE TABLE retrievals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            archive_row INTEGER REFERENCES archives (id) ON DELETE SET NULL,
            destination TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('archive', 'inventory')),
            job_id TEXT,
            tier TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('requested', 'ready', 'downloading', 'done', 'failed', 'expired')),
            requested_at TEXT NOT NULL,
            ready_at TEXT,
            updated_at TEXT NOT NULL,
            download_path TEXT,
            detail TEXT,
            CHECK (kind = 'archive' OR archive_row IS NULL)
        ) STRICT""",
        """CREATE TABLE log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
            level TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
            event TEXT NOT NULL,
            message TEXT NOT NULL,
            detail TEXT
        ) STRICT""",
        "CREATE INDEX log_by_run ON log (run_id) WHERE run_id IS NOT NULL",
    ),
)

_V2 = Migration(
    version=2,
    summary="download_parts: the verified parts of a retrieval's download",
    statements=(
        # One row per part of a download spool that was verified, written and
        # synced: a download that was stopped fetches only the parts without one.
        f"""CREATE TABLE download_parts (
            retrieval_id INTEGER NOT NULL REFERENCES retrievals (id) ON DELETE CASCADE,
            part_number INTEGER NOT NULL CHECK (part_number >= 0),
            "offset" INTEGER NOT NULL CHECK ("offset" >= 0),
            size INTEGER NOT NULL CHECK (size > 0),
            sha256 TEXT NOT NULL CHECK ({_HEX64.format("sha256")}),
            tree_hash TEXT NOT NULL CHECK ({_HEX64.format("tree_hash")}),
            done_at TEXT NOT NULL,
            PRIMARY KEY (retrieval_id, part_number)
        ) STRICT, WITHOUT ROWID""",
    ),
)

#: Every migration, in order; ``MIGRATIONS[i].version == i + 1``.
MIGRATIONS: tuple[Migration, ...] = (_V1, _V2)


def latest_version(migrations: Sequence[Migration]) -> int:
    """The schema version ``migrations`` lead to, after checking they are numbered 1..N."""
    for index, step in enumerate(migrations):
        if step.version != index + 1:
            raise ValueError(f"migration {step.version} is at position {index + 1}")
    return len(migrations)


@dataclass(frozen=True)
class Identity:
    """What a database says about itself."""

    application_id: int
    user_version: int
    objects: tuple[str, ...]  # tables, indexes, views, triggers (not SQLite's own)

    @property
    def blank(self) -> bool:
        """An SQLite file nobody has put anything in (a first open that stopped early)."""
        return self.application_id == 0 and self.user_version == 0 and not self.objects


async def read_identity(conn: aiosqlite.Connection) -> Identity:
    (app_id,) = await fetch_one(conn, "PRAGMA application_id")
    (version,) = await fetch_one(conn, "PRAGMA user_version")
    rows = await conn.execute_fetchall(
        "SELECT name FROM sqlite_schema WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name"
    )
    return Identity(int(app_id), int(version), tuple(str(row[0]) for row in rows))


def check_identity(identity: Identity, path: Path, latest: int) -> None:
    """Raise :class:`StateDamagedError` unless ``path`` is ours and not too new."""
    if identity.application_id == APPLICATION_ID:
        if identity.user_version > latest:
            raise StateDamagedError(
                f"the state file {path} was created by a newer aglacier "
                f"(schema {identity.user_version}; this version knows up to {latest})",
                hint="Upgrade aglacier; the file was left unchanged.",
            )
        return
    if not identity.blank:
        raise StateDamagedError(
            f"the state file {path} is another application's SQLite database "
            f"(application id {identity.application_id:#x}, not aglacier's)",
            hint="Point aglacier at another state folder; the file was left unchanged.",
        )


async def migrate(conn: aiosqlite.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    """Bring the database up to the last of ``migrations``, one transaction per step.

    The identity is checked again inside each write transaction: the check made
    before opening read-write may have seen a state another process has since
    changed. ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    latest = latest_version(migrations)
    while True:
        try:
            await conn.execute("BEGIN IMMEDIATE")  # in the try: see StoreBase._transaction
            identity = await read_identity(conn)
            check_identity(identity, path, latest)
            if identity.user_version == latest:
                await conn.rollback()  # nothing written: just end the transaction
                return
            step = migrations[identity.user_version]
            await _apply(conn, step, path)
            await conn.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.rollback()
            raise


async def _apply(conn: aiosqlite.Connection, step: Migration, path: Path) -> None:
    try:
        for statement in step.statements:
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {int(step.version)}")
    except aiosqlite.Error as exc:
        raise StateDamagedError(
            f"could not upgrade the state file {path} to schema {step.version} "
            f"({step.summary}): {exc}",
            hint=f"The file was left at schema {step.version - 1}; this is a bug in aglacier.",
        ) from exc


async def fetch_one(conn: aiosqlite.Connection, sql: str) -> tuple[Any, ...]:
    """The first row of a query that always returns one (a PRAGMA)."""
    rows = list(await conn.execute_fetchall(sql))
    return tuple(rows[0])
