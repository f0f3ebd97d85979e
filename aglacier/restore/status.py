"""``restore --status``: where each recorded retrieval is, asked of its destination."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from aglacier.backends.base import Backend
from aglacier.restore.fetch import retrieval_state_text
from aglacier.restore.tracking import refresh
from aglacier.state import RecordNotFoundError, RetrievalKind, StateStore

#: Opens the backend of a destination URL.
OpenBackend = Callable[[str], AbstractAsyncContextManager[Backend]]


async def status_lines(
    store: StateStore, open_backend: OpenBackend, archive_row: int | None = None
) -> list[str]:
    """One line per active archive retrieval (of ``archive_row`` only, if given).

    Each is checked with its destination (HeadObject or DescribeJob: no cost) and
    any change is recorded, so a later ``restore`` starts from the fresh state.
    """
    lines: list[str] = []
    for row in await store.retrievals(active_only=True):
        if row.kind is not RetrievalKind.ARCHIVE or row.archive_row is None:
            continue
        if archive_row is not None and row.archive_row != archive_row:
            continue
        try:
            archive = await store.get_archive(row.archive_row)
        except RecordNotFoundError:  # pragma: no cover - the foreign key keeps it
            continue
        async with open_backend(row.destination) as backend:
            tracked = await refresh(store, backend, row, archive)
        lines.append(f"retrieval {row.id}: {retrieval_state_text(tracked, archive)}")
    return lines
