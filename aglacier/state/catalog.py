"""The catalog half of the store: finished archives, retrievals and the run log."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import aiosqlite

from .base import StoreBase, integrity_error
from .records import (
    Archive,
    DownloadPart,
    JsonObject,
    LogEntry,
    LogLevel,
    RecordNotFoundError,
    Retrieval,
    RetrievalKind,
    RetrievalState,
    Run,
    RunState,
    StateConflictError,
    dump_json,
    format_time,
    now_text,
)


class CatalogStore(StoreBase):
    """Archives, retrievals and log entries (the public class is ``StateStore``)."""

    # --- archives ------------------------------------------------------------

    async def complete_run(
        self,
        run_id: int,
        archive_id: str,
        *,
        description: str | None = None,
        manifest: JsonObject | None = None,
    ) -> Archive:
        """Record the archive a staged run became, and mark the run ``done``, atomically.

        Size, checksums, part size and the rest come from the run itself. Called
        again for a run already done with the same ``archive_id``, it returns
        the recorded archive (so a retried call is harmless).
        """
        async with self._transaction() as conn:
            rows = list(await conn.execute_fetchall("SELECT * FROM runs WHERE id = ?", (run_id,)))
            if not rows:
                raise RecordNotFoundError(f"no run {run_id} in the state")
            run = Run.from_row(rows[0])
            if run.state is RunState.DONE:
                return await _archive_of_done_run(conn, run, archive_id)
            if run.state.finished or run.archive_size is None:
                raise StateConflictError(
                    f"run {run_id} is {run.state}: only a staged run can complete"
                )
            archive = await _insert_archive(
                conn,
                (run.id, str(run.source), run.destination, archive_id, run.archive_size,
                 run.archive_sha256, run.archive_tree_hash, run.part_size, run.storage_class,
                 run.host, now_text(), description, dump_json(manifest)),
            )  # fmt: skip
            now = now_text()
            await conn.execute(
                "UPDATE runs SET state = 'done', error = NULL, finished_at = ?, updated_at = ?"
                " WHERE id = ?",
                (now, now, run_id),
            )
        return archive

    async def add_archive(
        self,
        source: Path,
        destination: str,
        archive_id: str,
        *,
        size: int,
        sha256: str,
        tree_hash: str,
        part_size: int,
        host: str,
        created_at: datetime,
        storage_class: str | None = None,
        description: str | None = None,
        manifest: JsonObject | None = None,
    ) -> Archive:
        """Record an archive learnt from the destination (a catalog rebuilt from manifests).

        Adding the same archive again (same destination, id, size and SHA256)
        returns the recorded one; other values for a known id raise
        :class:`StateConflictError`. Archives uploaded by a run are recorded by
        :meth:`complete_run` instead.
        """
        values = (None, str(source), destination, archive_id, size, sha256, tree_hash,
                  part_size, storage_class, host, format_time(created_at), description,
                  dump_json(manifest))  # fmt: skip
        async with self._transaction() as conn:
            existing = await _find_archive(conn, destination, archive_id)
            if existing is None:
                return await _insert_archive(conn, values)
        if (existing.size, existing.sha256) != (size, sha256):
            raise StateConflictError(
                f"archive {archive_id} at {destination} is already recorded with size"
                f" {existing.size} and SHA256 {existing.sha256}"
            )
        return existing

    async def archives(
        self, source: Path | None = None, *, destination: str | None = None
    ) -> list[Archive]:
        """Archives in the catalog, oldest first, optionally of one source and/or destination."""
        rows = await self._read(
            "SELECT * FROM archives WHERE (?1 IS NULL OR source = ?1)"
            " AND (?2 IS NULL OR destination = ?2) ORDER BY created_at, id",
            (None if source is None else str(source), destination),
        )
        return [Archive.from_row(row) for row in rows]

    async def get_archive(self, archive_row: int) -> Archive:
        """The archive with catalog id ``archive_row``; raises :class:`RecordNotFoundError`."""
        rows = await self._read("SELECT * FROM archives WHERE id = ?", (archive_row,))
        if not rows:
            raise RecordNotFoundError(f"no archive {archive_row} in the catalog")
        return Archive.from_row(rows[0])

    async def find_archive(self, destination: str, archive_id: str) -> Archive | None:
        """The archive ``destination`` calls ``archive_id``, if the catalog has it."""
        rows = await self._read(
            "SELECT * FROM archives WHERE destination = ? AND archive_id = ?",
            (destination, archive_id),
        )
        return Archive.from_row(rows[0]) if rows else None

    # --- retrievals ----------------------------------------------------------

    async def add_retrieval(
        self,
        kind: RetrievalKind,
        destination: str,
        tier: str,
        *,
        archive_row: int | None = None,
        job_id: str | None = None,
        detail: JsonObject | None = None,
    ) -> Retrieval:
        """Record a retrieval the destination accepted, in state ``requested``.

        ``archive_row`` is the catalog id of the archive (None for an inventory,
        or an archive the catalog does not know: say which in ``detail``).
        """
        now = now_text()
        try:
            rows = await self._write_returning(
                "INSERT INTO retrievals (archive_row, destination, kind, job_id, tier, state,"
                " requested_at, updated_at, detail) VALUES (?, ?, ?, ?, ?, 'requested', ?, ?, ?)"
                " RETURNING *",
                (archive_row, destination, kind.value, job_id, tier, now, now, dump_json(detail)),
            )
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc, f"archive {archive_row}") from exc
        return Retrieval.from_row(rows[0])

    async def update_retrieval(
        self,
        retrieval_id: int,
        state: RetrievalState,
        *,
        job_id: str | None = None,
        download_path: Path | None = None,
        detail: JsonObject | None = None,
    ) -> Retrieval:
        """Move a retrieval to ``state``; the keyword values replace the recorded ones
        when given (None keeps them). Reaching ``ready`` stamps ``ready_at`` once."""
        now = now_text()
        rows = await self._write_returning(
            "UPDATE retrievals SET state = ?1, updated_at = ?2,"
            " ready_at = COALESCE(ready_at, CASE WHEN ?1 = 'ready' THEN ?2 END),"
            " job_id = COALESCE(?3, job_id), download_path = COALESCE(?4, download_path),"
            " detail = COALESCE(?5, detail) WHERE id = ?6 RETURNING *",
            (state.value, now, job_id, None if download_path is None else str(download_path),
             dump_json(detail), retrieval_id),
        )  # fmt: skip
        if not rows:
            raise RecordNotFoundError(f"no retrieval {retrieval_id} in the state")
        return Retrieval.from_row(rows[0])

    async def get_retrieval(self, retrieval_id: int) -> Retrieval:
        """The retrieval ``retrieval_id``; raises :class:`RecordNotFoundError`."""
        rows = await self._read("SELECT * FROM retrievals WHERE id = ?", (retrieval_id,))
        if not rows:
            raise RecordNotFoundError(f"no retrieval {retrieval_id} in the state")
        return Retrieval.from_row(rows[0])

    async def retrievals(
        self, *, active_only: bool = False, destination: str | None = None
    ) -> list[Retrieval]:
        """Retrievals, oldest first; ``active_only`` keeps those requested, ready or downloading."""
        rows = await self._read(
            "SELECT * FROM retrievals WHERE (?1 IS NULL OR destination = ?1)"
            " AND (NOT ?2 OR state IN ('requested', 'ready', 'downloading')) ORDER BY id",
            (destination, active_only),
        )
        return [Retrieval.from_row(row) for row in rows]

    # --- downloads -----------------------------------------------------------

    async def add_download_part(
        self,
        retrieval_id: int,
        part_number: int,
        *,
        offset: int,
        size: int,
        sha256: str,
        tree_hash: str,
    ) -> DownloadPart:
        """Record a part of the retrieval's download as verified and synced to disk.

        Call it only after the part's bytes are written and synced. Recording a
        part again replaces the earlier row (a part fetched again after damage).
        """
        try:
            rows = await self._write_returning(
                'INSERT INTO download_parts (retrieval_id, part_number, "offset", size, sha256,'
                " tree_hash, done_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (retrieval_id, part_number) DO UPDATE SET"
                ' "offset" = excluded."offset", size = excluded.size, sha256 = excluded.sha256,'
                " tree_hash = excluded.tree_hash, done_at = excluded.done_at RETURNING *",
                (retrieval_id, part_number, offset, size, sha256, tree_hash, now_text()),
            )
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc, f"retrieval {retrieval_id}") from exc
        return DownloadPart.from_row(rows[0])

    async def download_parts(self, retrieval_id: int) -> list[DownloadPart]:
        """The parts of the retrieval's download recorded as done, by number."""
        rows = await self._read(
            "SELECT * FROM download_parts WHERE retrieval_id = ? ORDER BY part_number",
            (retrieval_id,),
        )
        return [DownloadPart.from_row(row) for row in rows]

    async def forget_download_parts(
        self, retrieval_id: int, part_numbers: Sequence[int] | None = None
    ) -> int:
        """Forget some (or all) downloaded parts, so that they are fetched again.

        Returns how many rows were removed.
        """
        if part_numbers is None:
            return await self._write(
                "DELETE FROM download_parts WHERE retrieval_id = ?", (retrieval_id,)
            )
        removed = 0
        async with self._transaction() as conn:
            for number in part_numbers:
                async with conn.execute(
                    "DELETE FROM download_parts WHERE retrieval_id = ? AND part_number = ?",
                    (retrieval_id, number),
                ) as cursor:
                    removed += cursor.rowcount
        return removed

    async def finish_retrieval(self, retrieval_id: int) -> Retrieval:
        """Mark the retrieval ``done`` and drop its download rows, in one transaction."""
        async with self._transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "UPDATE retrievals SET state = 'done', updated_at = ? WHERE id = ? RETURNING *",
                    (now_text(), retrieval_id),
                )
            )
            if not rows:
                raise RecordNotFoundError(f"no retrieval {retrieval_id} in the state")
            await conn.execute("DELETE FROM download_parts WHERE retrieval_id = ?", (retrieval_id,))
        return Retrieval.from_row(rows[0])

    # --- the run log ---------------------------------------------------------

    async def log(
        self,
        level: LogLevel,
        event: str,
        message: str,
        *,
        run_id: int | None = None,
        detail: JsonObject | None = None,
    ) -> None:
        """Append to the run log; ``event`` is a short dotted name like ``upload.initiated``."""
        try:
            await self._write(
                "INSERT INTO log (at, run_id, level, event, message, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now_text(), run_id, level.value, event, message, dump_json(detail)),
            )
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc, f"run {run_id}") from exc

    async def log_entries(
        self, *, limit: int | None = None, run_id: int | None = None
    ) -> list[LogEntry]:
        """The last ``limit`` log entries (all if None), of one run if given, oldest first.

        Ordered by insertion, not by timestamp: the clock may step back.
        """
        rows = await self._read(
            "SELECT * FROM (SELECT * FROM log WHERE (?1 IS NULL OR run_id = ?1)"
            " ORDER BY id DESC LIMIT ?2) ORDER BY id",
            (run_id, -1 if limit is None else limit),
        )
        return [LogEntry.from_row(row) for row in rows]


async def _insert_archive(conn: aiosqlite.Connection, values: tuple[object, ...]) -> Archive:
    try:
        rows = list(
            await conn.execute_fetchall(
                "INSERT INTO archives (run_id, source, destination, archive_id, size, sha256,"
                " tree_hash, part_size, storage_class, host, created_at, description, manifest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                values,
            )
        )
    except sqlite3.IntegrityError as exc:
        raise integrity_error(exc, "run") from exc
    return Archive.from_row(rows[0])


async def _find_archive(
    conn: aiosqlite.Connection, destination: str, archive_id: str
) -> Archive | None:
    rows = list(
        await conn.execute_fetchall(
            "SELECT * FROM archives WHERE destination = ? AND archive_id = ?",
            (destination, archive_id),
        )
    )
    return Archive.from_row(rows[0]) if rows else None


async def _archive_of_done_run(conn: aiosqlite.Connection, run: Run, archive_id: str) -> Archive:
    rows = list(await conn.execute_fetchall("SELECT * FROM archives WHERE run_id = ?", (run.id,)))
    if not rows or rows[0]["archive_id"] != archive_id:
        raise StateConflictError(f"run {run.id} is already done with another archive")
    return Archive.from_row(rows[0])
