"""Retrievals are paid for once: each request the destination accepted is recorded,
and every later run picks the recorded one up instead of asking (and paying) again.

A retrieval row moves ``requested → ready → downloading → done``, or ends ``failed``
or ``expired`` (the job output or restored copy is gone: a new request is needed).
The destination is the truth about readiness; the row is written only after the
destination answered, in a shielded write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import anyio

from aglacier.backends import base
from aglacier.backends.base import Backend, Tier
from aglacier.state import Archive, Retrieval, RetrievalKind, RetrievalState, StateStore
from aglacier.state.records import JsonObject

T = TypeVar("T")

_STATES = {
    base.RetrievalState.IN_PROGRESS: RetrievalState.REQUESTED,
    base.RetrievalState.READY: RetrievalState.READY,
    base.RetrievalState.FAILED: RetrievalState.FAILED,
    base.RetrievalState.EXPIRED: RetrievalState.EXPIRED,
}


async def shielded(func: Callable[..., Awaitable[T]], *args: object, **kwargs: object) -> T:
    """A state write that cancellation (Ctrl-C) cannot tear."""
    with anyio.CancelScope(shield=True):
        result = await func(*args, **kwargs)
    return result


@dataclass(frozen=True)
class Tracked:
    """A recorded retrieval and what the destination last said about it."""

    row: Retrieval
    remote: base.Retrieval

    @property
    def ready(self) -> bool:
        """Whether the archive can be read now (ready, or its download has begun)."""
        return self.row.state in (RetrievalState.READY, RetrievalState.DOWNLOADING)

    @property
    def requested_at(self) -> datetime:
        """When the destination accepted the request."""
        return self.row.requested_at


def remote_of(row: Retrieval, archive: Archive) -> base.Retrieval:
    """The backend's view of a recorded retrieval (its state as last recorded)."""
    ready = row.state in (RetrievalState.READY, RetrievalState.DOWNLOADING)
    state = base.RetrievalState.READY if ready else base.RetrievalState.IN_PROGRESS
    return base.Retrieval(archive.archive_id, Tier(row.tier), state, job_id=row.job_id)


async def active_retrieval(store: StateStore, archive: Archive) -> Retrieval | None:
    """The newest retrieval of ``archive`` still requested, ready or downloading."""
    rows = [
        row
        for row in await store.retrievals(active_only=True, destination=archive.destination)
        if row.archive_row == archive.id and row.kind is RetrievalKind.ARCHIVE
    ]
    return rows[-1] if rows else None


async def refresh(store: StateStore, backend: Backend, row: Retrieval, archive: Archive) -> Tracked:
    """Ask the destination where the retrieval is, and record any change."""
    remote = await backend.retrieval_status(remote_of(row, archive))
    state = _STATES[remote.state]
    if state is RetrievalState.READY and row.state is RetrievalState.DOWNLOADING:
        state = RetrievalState.DOWNLOADING
    if state is not row.state:
        row = await shielded(
            store.update_retrieval, row.id, state, detail=_detail(row, archive, remote)
        )
    return Tracked(row, remote)


async def request(
    store: StateStore, backend: Backend, archive: Archive, *, tier: Tier, days: int
) -> Tracked:
    """Ask the destination for the archive (this may cost money) and record the answer."""
    remote = await backend.request_retrieval(archive.archive_id, tier=tier, days=days)
    row = await shielded(
        store.add_retrieval,
        RetrievalKind.ARCHIVE,
        archive.destination,
        str(tier),
        archive_row=archive.id,
        job_id=remote.job_id,
        detail={"archive_id": archive.archive_id, "days": days, "status": remote.detail},
    )
    if remote.state is not base.RetrievalState.IN_PROGRESS:
        row = await shielded(
            store.update_retrieval,
            row.id,
            _STATES[remote.state],
            detail=_detail(row, archive, remote),
        )
    return Tracked(row, remote)


async def start_download(store: StateStore, tracked: Tracked, spool: Path) -> Tracked:
    """Record that the download into the file ``spool`` has begun."""
    if tracked.row.state is RetrievalState.DOWNLOADING and tracked.row.download_path == spool:
        return tracked
    row = await shielded(
        store.update_retrieval, tracked.row.id, RetrievalState.DOWNLOADING, download_path=spool
    )
    return Tracked(row, tracked.remote)


def _detail(row: Retrieval, archive: Archive, remote: base.Retrieval) -> JsonObject:
    detail: JsonObject = dict(row.detail or {})
    detail.update({"archive_id": archive.archive_id, "status": remote.detail})
    return detail
