"""How the store talks to SQLite: one lock, one statement or one transaction per call.

Every public store method is one short transaction, committed before it
returns (``synchronous=FULL``: durable even against a power cut). Most are a
single statement in autocommit mode; those that touch several rows use
``BEGIN IMMEDIATE``…``COMMIT``, rolled back in a shielded scope when
interrupted, so a cancelled task never leaves half a change behind. An
``anyio.Lock`` keeps one task's transaction from interleaving with another
task's statements on the shared connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from .records import RecordNotFoundError, Run, StateConflictError


class StoreBase:
    """The connection and the transaction helpers the store's methods are built on."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, *, readonly: bool) -> None:
        self._conn = conn
        self._path = path
        self._readonly = readonly
        self._lock = anyio.Lock()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def readonly(self) -> bool:
        """Whether the store was opened with ``open_readonly`` (write methods raise)."""
        return self._readonly

    async def pragmas(self) -> dict[str, object]:
        """The connection's SQLite settings, for diagnostics and tests."""
        names = ("journal_mode", "synchronous", "foreign_keys", "user_version", "application_id")
        settings: dict[str, object] = {}
        for name in names:  # fixed names: nothing from outside reaches the SQL
            rows = await self._read(f"PRAGMA {name}")
            settings[name] = rows[0][0]
        return settings

    async def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement in autocommit mode; returns how many rows it changed."""
        self._check_writable()
        async with self._lock, self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def _write_returning(self, sql: str, params: Iterable[Any]) -> list[sqlite3.Row]:
        """One ``… RETURNING`` statement in autocommit mode."""
        self._check_writable()
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        self._check_writable()
        async with self._lock:
            try:
                # Inside the try: a cancellation while awaiting BEGIN still
                # lets BEGIN run in aiosqlite's thread, so it needs the rollback.
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.commit()
            except BaseException:
                # Shielded: a cancelled task must not leave its transaction
                # open for the next task's statements to join.
                with anyio.CancelScope(shield=True):
                    await self._conn.rollback()
                raise

    def _check_writable(self) -> None:
        if self._readonly:
            raise RuntimeError(f"the state {self._path} was opened read-only")

    async def _updated_run(
        self, rows: Iterable[sqlite3.Row], run_id: int, conn: aiosqlite.Connection | None = None
    ) -> Run:
        """The run an ``UPDATE … RETURNING`` changed, or an error saying why it changed none.

        Pass ``conn`` when called inside :meth:`_transaction` (which holds the lock).
        """
        changed = list(rows)
        if changed:
            return Run.from_row(changed[0])
        query = "SELECT * FROM runs WHERE id = ?"
        if conn is None:
            found = await self._read(query, (run_id,))
        else:
            found = list(await conn.execute_fetchall(query, (run_id,)))
        if not found:
            raise RecordNotFoundError(f"no run {run_id} in the state")
        state = Run.from_row(found[0]).state
        raise StateConflictError(f"run {run_id} is {state}: the change does not apply")


def integrity_error(exc: sqlite3.IntegrityError, owner: str) -> Exception:
    """The store's error for a constraint SQLite enforced; ``owner`` names the parent row."""
    if "FOREIGN KEY" in str(exc):
        return RecordNotFoundError(f"no {owner} in the state")
    return StateConflictError(f"refused by the state database: {exc}")
