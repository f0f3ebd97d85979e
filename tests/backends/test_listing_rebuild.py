"""From an inventory to catalog rows (``aglacier.catalog``), with a real state database.

The vault's inventory job is tracked in ``retrievals``: these tests drive it on the
vault emulator, whose jobs finish when the test says so.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aglacier.backends.base import (
    Inventory,
    ListedArchive,
    SkippedEntry,
    SkipReason,
)
from aglacier.backends.glacier import VaultBackend
from aglacier.catalog import (
    UNKNOWN_SHA256,
    fetch_inventory,
    finish_inventory,
    rebuild_catalog,
)
from aglacier.catalog.inventory_job import FIRST_POLL, INVENTORY_TIER
from aglacier.errors import ExitCode, NotReadyError
from aglacier.state import RetrievalKind, RetrievalState, StateStore
from tests.backends.aws_servers import open_vault_backend
from tests.backends.conftest import archive_info, random_bytes
from tests.backends.test_listing import store_as
from tests.vault_emulator import VaultEmulator

pytestmark = pytest.mark.anyio

DEST = "glacier://v"
WHEN = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        yield store


@pytest.fixture
async def vault(vault_emulator: VaultEmulator) -> AsyncIterator[VaultBackend]:
    name = f"aglacier-test-{secrets.token_hex(6)}"
    async with open_vault_backend(vault_emulator.endpoint_url, name) as backend:
        yield backend


def _listed(
    archive_id: str, *, source: str | None = "/src", sha256: str | None = None
) -> ListedArchive:
    return ListedArchive(
        archive_id=archive_id,
        size=100,
        tree_hash="ab" * 32,
        created_at=WHEN,
        source=source,
        host="h" if source else None,
        part_size=1 << 20 if source else None,
        sha256=sha256,
        description="old tool" if source is None else None,
    )


async def test_rows_are_added_once_with_placeholders_for_what_is_unknown(
    state: StateStore,
) -> None:
    inventory = Inventory(
        [_listed("ours"), _listed("theirs", source=None)],
        [SkippedEntry("m.manifest.json", SkipReason.INCOMPLETE, "no archive")],
    )
    dry = await rebuild_catalog(state, DEST, inventory, dry_run=True)
    assert [a.archive_id for a in dry.added] == ["ours"] and await state.archives() == []

    first = await rebuild_catalog(state, DEST, inventory)
    again = await rebuild_catalog(state, DEST, inventory)

    assert [a.archive_id for a in first.added] == ["ours"] and first.found == 2
    assert [(s.name, s.reason) for s in first.skipped] == [
        ("m.manifest.json", SkipReason.INCOMPLETE),
        ("theirs", SkipReason.FOREIGN),
    ]
    assert first.needs_a_look  # the incomplete upload
    assert again.added == [] and [a.archive_id for a in again.known] == ["ours"]
    [row] = await state.archives()
    assert (row.run_id, row.source, row.host, row.sha256) == (
        None,
        Path("/src"),
        "h",
        UNKNOWN_SHA256,
    )
    assert (row.created_at, row.part_size, row.tree_hash) == (WHEN, 1 << 20, "ab" * 32)
    log = await state.log_entries()
    assert [e.event for e in log] == ["catalog.rebuilt", "catalog.rebuilt"]


async def test_foreign_archives_are_added_on_request(state: StateStore) -> None:
    inventory = Inventory([_listed("theirs", source=None)], [])
    result = await rebuild_catalog(state, DEST, inventory, include_foreign=True)
    assert not result.needs_a_look
    [row] = await state.archives()
    assert (row.source, row.host, row.description) == (Path("old tool"), "", "old tool")
    assert row.part_size == 8 << 20  # what aglacier would plan for 100 bytes


async def test_a_known_id_with_other_values_is_reported_not_changed(state: StateStore) -> None:
    await rebuild_catalog(state, DEST, Inventory([_listed("a", sha256="cd" * 32)], []))
    changed = ListedArchive(**{**_listed("a").__dict__, "size": 101})
    result = await rebuild_catalog(state, DEST, Inventory([changed], []))
    assert [s.reason for s in result.skipped] == ["differs"] and result.needs_a_look
    [row] = await state.archives()
    assert (row.size, row.sha256) == (100, "cd" * 32)


async def test_a_vault_job_is_recorded_reused_then_read(
    state: StateStore, vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    stored = await store_as(vault, archive_info(1 << 20), random_bytes(1000))
    initiated = vault_emulator.counters().requests.get("InitiateJob", 0)
    vault_emulator.set_job_delay(3600)
    try:
        for _ in range(2):
            with pytest.raises(NotReadyError) as raised:
                await fetch_inventory(state, vault, DEST, wait=False, notify=print)
            assert raised.value.exit_code is ExitCode.NOT_READY
            assert raised.value.hint and "--wait" in raised.value.hint
    finally:
        vault_emulator.set_job_delay(0)
    [row] = await state.retrievals()
    assert (row.kind, row.state, row.tier) == (
        RetrievalKind.INVENTORY,
        RetrievalState.REQUESTED,
        INVENTORY_TIER,
    )
    assert vault_emulator.counters().requests["InitiateJob"] == initiated + 1

    vault_emulator.complete_jobs()
    inventory, used = await fetch_inventory(state, vault, DEST, wait=False, notify=print)
    assert used is not None and used.id == row.id and used.state is RetrievalState.READY
    assert [a.archive_id for a in inventory.archives] == [stored.archive.archive_id]
    await finish_inventory(state, used)
    assert (await state.get_retrieval(row.id)).state is RetrievalState.DONE
    assert vault_emulator.counters().requests["InitiateJob"] == initiated + 1


async def test_waiting_polls_with_backoff(
    state: StateStore, vault: VaultBackend, vault_emulator: VaultEmulator
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            vault_emulator.complete_jobs()

    vault_emulator.set_job_delay(3600)
    try:
        inventory, row = await fetch_inventory(
            state, vault, DEST, wait=True, notify=print, sleep=sleep
        )
    finally:
        vault_emulator.set_job_delay(0)
    assert slept == [FIRST_POLL, 2 * FIRST_POLL, 4 * FIRST_POLL]
    assert inventory.archives == [] and row is not None and row.state is RetrievalState.READY


async def test_a_job_the_vault_forgot_is_replaced(state: StateStore, vault: VaultBackend) -> None:
    old = await state.add_retrieval(
        RetrievalKind.INVENTORY, DEST, INVENTORY_TIER, job_id="gone" * 23
    )
    notes: list[str] = []
    _, row = await fetch_inventory(state, vault, DEST, wait=False, notify=notes.append)
    assert row is not None and row.id != old.id and row.job_id != old.job_id
    assert (await state.get_retrieval(old.id)).state is RetrievalState.EXPIRED
    assert any("expired" in n for n in notes)
