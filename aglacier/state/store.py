"""The state store: backup runs and their parts (the catalog half is in ``catalog``).

See :mod:`aglacier.state.base` for the transaction rules every method follows.
aiosqlite runs on asyncio only, so the store does too (anyio on its asyncio backend).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from .base import integrity_error
from .catalog import CatalogStore
from .connection import close, connect_readonly, connect_writable
from .records import Part, RecordNotFoundError, Run, RunState, StateConflictError, now_text
from .schema import MIGRATIONS, Migration


class StateStore(CatalogStore):
    """The SQLite state of one state folder. Open it with :meth:`open` or :meth:`open_readonly`."""

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS
    ) -> AsyncIterator[StateStore]:
        """Open ``path`` for reading and writing, creating and upgrading it as needed.

        Hold the :class:`~aglacier.state.lock.RunLock` of its folder first.
        Raises :class:`~aglacier.errors.StateDamagedError` for a damaged,
        foreign or newer file, which is then left untouched. ``migrations`` is
        for tests of the upgrade path.
        """
        conn = await connect_writable(path, migrations)
        try:
            yield cls(conn, path, readonly=False)
        finally:
            await close(conn)

    @classmethod
    @asynccontextmanager
    async def open_readonly(
        cls, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS
    ) -> AsyncIterator[StateStore]:
        """Open ``path`` for reading only: needs no run lock and never writes the file.

        Safe while another process writes (WAL readers see the last commit). A
        missing file reads as an empty state; an older schema is upgraded in
        an in-memory copy. Write methods raise :class:`RuntimeError`.
        """
        conn = await connect_readonly(path, migrations)
        try:
            yield cls(conn, path, readonly=True)
        finally:
            await close(conn)

    # --- runs ----------------------------------------------------------------

    async def create_run(
        self,
        source: Path,
        destination: str,
        *,
        part_size: int,
        host: str,
        estimated_size: int | None = None,
        storage_class: str | None = None,
        spool_path: Path | None = None,
    ) -> Run:
        """Record a new run in state ``planned``.

        Raises :class:`StateConflictError` while another run of the same
        source to the same destination is unfinished.
        """
        if not source.is_absolute():
            raise ValueError(f"source must be an absolute path, not {source}")
        now = now_text()
        try:
            rows = await self._write_returning(
                "INSERT INTO runs (source, destination, state, part_size, estimated_size,"
                " spool_path, storage_class, host, created_at, updated_at)"
                " VALUES (?, ?, 'planned', ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (str(source), destination, part_size, estimated_size, _text(spool_path),
                 storage_class, host, now, now),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            other = await self.unfinished_run_for(source, destination)
            if other is None:
                raise StateConflictError(f"cannot record the run: {exc}") from exc
            raise StateConflictError(
                f"run {other.id} of {source} to {destination} is unfinished ({other.state})"
            ) from exc
        return Run.from_row(rows[0])

    async def set_run_state(self, run_id: int, state: RunState, *, error: str | None = None) -> Run:
        """Move an unfinished run to ``state``; ``error`` says why (None clears it).

        ``done`` is reached only through :meth:`complete_run`, which records the
        archive in the same transaction. A finished run never changes.
        """
        if state is RunState.DONE:
            raise ValueError("a run becomes done through complete_run()")
        now = now_text()
        rows = await self._write_returning(
            "UPDATE runs SET state = ?, error = ?, updated_at = ?, finished_at = ?"
            " WHERE id = ? AND finished_at IS NULL RETURNING *",
            (state.value, error, now, now if state.finished else None, run_id),
        )
        return await self._updated_run(rows, run_id)

    async def set_upload(self, run_id: int, upload_id: str, remote_key: str | None) -> Run:
        """Record the upload id the server acknowledged (and the remote key, if known).

        Replacing another upload id forgets the parts acknowledged under it.
        """
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE parts SET uploaded_at = NULL, etag = NULL WHERE run_id = ?"
                " AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND upload_id IS NOT ?)",
                (run_id, run_id, upload_id),
            )
            rows = await conn.execute_fetchall(
                "UPDATE runs SET upload_id = ?, remote_key = ?, updated_at = ?"
                " WHERE id = ? AND finished_at IS NULL RETURNING *",
                (upload_id, remote_key, now_text(), run_id),
            )
            run = await self._updated_run(rows, run_id, conn)
        return run

    async def clear_upload(self, run_id: int) -> Run:
        """Forget the run's upload id and remote key, and every part acknowledged under them."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE parts SET uploaded_at = NULL, etag = NULL WHERE run_id = ?", (run_id,)
            )
            rows = await conn.execute_fetchall(
                "UPDATE runs SET upload_id = NULL, remote_key = NULL, updated_at = ?"
                " WHERE id = ? AND finished_at IS NULL RETURNING *",
                (now_text(), run_id),
            )
            run = await self._updated_run(rows, run_id, conn)
        return run

    async def set_staged(self, run_id: int, size: int, sha256: str, tree_hash: str) -> Run:
        """Record the whole spooled ciphertext and move the run to ``staged``.

        The recorded parts must tile ``size`` bytes exactly (numbers 0..n-1,
        each starting where the previous ended). Repeating the call with the
        same values is harmless.
        """
        async with self._transaction() as conn:
            updated = await conn.execute_fetchall(
                "UPDATE runs SET state = 'staged', archive_size = ?, archive_sha256 = ?,"
                " archive_tree_hash = ?, updated_at = ? WHERE id = ?"
                " AND (state IN ('planned', 'staging') OR (state = 'staged'"
                " AND archive_size = ? AND archive_sha256 = ? AND archive_tree_hash = ?))"
                " RETURNING *",
                (size, sha256, tree_hash, now_text(), run_id, size, sha256, tree_hash),
            )
            run = await self._updated_run(updated, run_id, conn)
            rows = await conn.execute_fetchall(
                'SELECT part_number, "offset", size FROM parts WHERE run_id = ?'
                " ORDER BY part_number",
                (run_id,),
            )
            _check_tiling(run_id, [(r[0], r[1], r[2]) for r in rows], size)  # else rolled back
        return run

    async def get_run(self, run_id: int) -> Run:
        """The run ``run_id``; raises :class:`RecordNotFoundError` if there is none."""
        rows = await self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RecordNotFoundError(f"no run {run_id} in the state")
        return Run.from_row(rows[0])

    async def unfinished_runs(self) -> list[Run]:
        """Runs not yet done, aborted or failed, oldest first: what ``resume`` works on."""
        rows = await self._read("SELECT * FROM runs WHERE finished_at IS NULL ORDER BY id")
        return [Run.from_row(row) for row in rows]

    async def unfinished_run_for(self, source: Path, destination: str) -> Run | None:
        """The unfinished run of ``source`` to ``destination``, if any (there is at most one)."""
        rows = await self._read(
            "SELECT * FROM runs WHERE source = ? AND destination = ? AND finished_at IS NULL",
            (str(source), destination),
        )
        return Run.from_row(rows[0]) if rows else None

    async def last_done_run(self, source: Path, destination: str) -> Run | None:
        """The most recently finished successful run of ``source`` to ``destination``."""
        rows = await self._read(
            "SELECT * FROM runs WHERE source = ? AND destination = ? AND state = 'done'"
            " ORDER BY finished_at DESC, id DESC LIMIT 1",
            (str(source), destination),
        )
        return Run.from_row(rows[0]) if rows else None

    # --- parts ---------------------------------------------------------------

    async def add_part(
        self, run_id: int, part_number: int, offset: int, size: int, sha256: str, tree_hash: str
    ) -> Part:
        """Record a spooled part. Recording the same part again returns the existing row;
        with other values it raises :class:`StateConflictError`."""
        async with self._transaction() as conn:
            try:
                await conn.execute(
                    'INSERT INTO parts (run_id, part_number, "offset", size, sha256, tree_hash,'
                    " spooled_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id, part_number) DO NOTHING",
                    (run_id, part_number, offset, size, sha256, tree_hash, now_text()),
                )
            except sqlite3.IntegrityError as exc:
                raise integrity_error(exc, f"run {run_id}") from exc
            rows = await conn.execute_fetchall(
                "SELECT * FROM parts WHERE run_id = ? AND part_number = ?", (run_id, part_number)
            )
        part = Part.from_row(next(iter(rows)))
        recorded = (part.offset, part.size, part.sha256, part.tree_hash)
        if recorded != (offset, size, sha256, tree_hash):
            raise StateConflictError(
                f"part {part_number} of run {run_id} is already recorded with other values"
                f" (offset {part.offset}, size {part.size}, sha256 {part.sha256})"
            )
        return part

    async def mark_part_uploaded(
        self, run_id: int, part_number: int, etag: str | None = None
    ) -> Part:
        """Record the server's acknowledgement of a part (again: the latest wins)."""
        rows = await self._write_returning(
            "UPDATE parts SET uploaded_at = ?, etag = ? WHERE run_id = ? AND part_number = ?"
            " AND EXISTS (SELECT 1 FROM runs WHERE id = ? AND upload_id IS NOT NULL)"
            " RETURNING *",
            (now_text(), etag, run_id, part_number, run_id),
        )
        if rows:
            return Part.from_row(rows[0])
        run = await self.get_run(run_id)
        if run.upload_id is None:
            raise StateConflictError(f"run {run_id} has no upload id: no part can be uploaded")
        raise RecordNotFoundError(f"run {run_id} has no part {part_number}")

    async def set_uploaded_parts(self, run_id: int, acknowledged: Mapping[int, str | None]) -> None:
        """Make the recorded acknowledgements exactly ``acknowledged`` (part number → etag).

        For reconciling with the server's list of parts (the server is the
        truth): one transaction, however many parts.
        """
        now = now_text()
        async with self._transaction() as conn:
            runs = list(
                await conn.execute_fetchall("SELECT upload_id FROM runs WHERE id = ?", (run_id,))
            )
            if not runs:
                raise RecordNotFoundError(f"no run {run_id} in the state")
            if acknowledged and runs[0][0] is None:
                raise StateConflictError(f"run {run_id} has no upload id: no part can be uploaded")
            await conn.execute(
                "UPDATE parts SET uploaded_at = NULL, etag = NULL WHERE run_id = ?", (run_id,)
            )
            async with conn.executemany(
                "UPDATE parts SET uploaded_at = ?, etag = ? WHERE run_id = ? AND part_number = ?",
                [(now, etag, run_id, number) for number, etag in acknowledged.items()],
            ) as cursor:
                changed = cursor.rowcount
            if changed != len(acknowledged):
                known = {
                    row[0]
                    for row in await conn.execute_fetchall(
                        "SELECT part_number FROM parts WHERE run_id = ?", (run_id,)
                    )
                }
                unknown = sorted(set(acknowledged) - known)
                raise StateConflictError(f"run {run_id} has no parts {unknown}")

    async def reset_parts_uploaded(self, run_id: int) -> None:
        """Forget every acknowledgement of the run's parts (they will be sent again)."""
        await self._write(
            "UPDATE parts SET uploaded_at = NULL, etag = NULL WHERE run_id = ?", (run_id,)
        )

    async def delete_parts(self, run_id: int) -> Run:
        """Forget the run's spooled ciphertext: its parts and whole-archive checksums.

        The run goes back to ``planned``, ready to stage again; its upload id
        is kept (aborting or reusing it is the caller's decision).
        """
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM parts WHERE run_id = ?", (run_id,))
            rows = await conn.execute_fetchall(
                "UPDATE runs SET state = 'planned', archive_size = NULL, archive_sha256 = NULL,"
                " archive_tree_hash = NULL, updated_at = ? WHERE id = ? AND finished_at IS NULL"
                " RETURNING *",
                (now_text(), run_id),
            )
            run = await self._updated_run(rows, run_id, conn)
        return run

    async def parts(self, run_id: int) -> list[Part]:
        """The run's parts in part-number order."""
        rows = await self._read(
            "SELECT * FROM parts WHERE run_id = ? ORDER BY part_number", (run_id,)
        )
        return [Part.from_row(row) for row in rows]


def _check_tiling(run_id: int, parts: list[tuple[int, int, int]], size: int) -> None:
    expected_offset = 0
    for index, (number, offset, part_size) in enumerate(parts):
        if number != index or offset != expected_offset:
            raise StateConflictError(
                f"run {run_id}: part {number} at offset {offset} does not follow the parts before"
            )
        expected_offset += part_size
    if expected_offset != size:
        raise StateConflictError(
            f"run {run_id}: its parts hold {expected_offset} bytes, not {size}"
        )


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
