"""Picking the archive: catalog id, archive id, a source's newest, or by date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from aglacier.errors import UsageError
from aglacier.restore import parse_date, select_archive
from aglacier.state import StateStore
from tests.restore.helpers import add_archive

pytestmark = pytest.mark.anyio
SOURCE = Path("/home/me/photos")


async def test_selection(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path / "state.sqlite3") as store:
        old = await add_archive(
            store,
            "file:///d",
            "a/1.tar.gpg",
            b"1",
            source=SOURCE,
            created_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
        )
        new = await add_archive(
            store,
            "file:///d",
            "a/2.tar.gpg",
            b"2",
            source=SOURCE,
            created_at=datetime(2026, 3, 5, 23, 59, tzinfo=UTC),
        )
        other = await add_archive(
            store, "file:///d", "b/3.tar.gpg", b"3", source=Path("/srv/other")
        )

        assert (await select_archive(store, str(SOURCE), on_or_before=None)).id == new.id
        on_day = await select_archive(store, str(SOURCE), on_or_before=date(2026, 3, 5))
        assert on_day.id == new.id
        before = await select_archive(store, str(SOURCE), on_or_before=date(2026, 3, 4))
        assert before.id == old.id
        assert (await select_archive(store, str(other.id), on_or_before=None)).id == other.id
        assert (await select_archive(store, "a/1.tar.gpg", on_or_before=None)).id == old.id

        with pytest.raises(UsageError, match="on or before 2026-02-01"):
            await select_archive(store, str(SOURCE), on_or_before=date(2026, 2, 1))
        with pytest.raises(UsageError, match="no archive 99"):
            await select_archive(store, "99", on_or_before=None)
        with pytest.raises(UsageError, match="--date"):
            await select_archive(store, str(old.id), on_or_before=date(2026, 3, 4))
        with pytest.raises(UsageError, match="no archive of"):
            await select_archive(store, "/nowhere", on_or_before=None)


def test_parse_date() -> None:
    assert parse_date("2026-03-04") == date(2026, 3, 4)
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        parse_date("4/3/2026")
