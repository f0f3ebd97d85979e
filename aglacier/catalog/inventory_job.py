"""Getting a destination's inventory, with a vault's hours-long job tracked in the state.

A vault's inventory job is recorded in ``retrievals`` (kind ``inventory``) as
soon as the vault accepts it, so that every later run asks about that job
instead of starting another: ``requested`` → ``ready`` → ``done`` once its
archives are in the catalog, or ``failed`` / ``expired`` (a new job is then
requested). With the state lost too, the vault's own job list is searched
first (:meth:`~aglacier.backends.base.ListingBackend.request_inventory`).
S3 and local folders list at once and leave no record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio

from aglacier.backends.base import Inventory, InventoryJob, ListingBackend
from aglacier.backends.base import RetrievalState as JobState
from aglacier.engine.context import shielded
from aglacier.errors import AglacierError, NoSuchArchiveError, NotReadyError
from aglacier.state import Retrieval, RetrievalKind, RetrievalState, StateStore

#: Inventory jobs have no tier; the column needs one, and this is how AWS prices them.
INVENTORY_TIER = "Standard"
#: How long AWS usually takes to finish an inventory job (3 to 5 hours).
TYPICAL_DURATION = timedelta(hours=4)
#: ``--wait`` polls after 1 s, then twice as long each time, up to every 15 minutes
#: (DescribeJob is free; the first polls catch a job that was nearly done).
FIRST_POLL = 1.0
MAX_POLL = 900.0

_ROW_STATE = {
    JobState.IN_PROGRESS: RetrievalState.REQUESTED,
    JobState.READY: RetrievalState.READY,
    JobState.FAILED: RetrievalState.FAILED,
    JobState.EXPIRED: RetrievalState.EXPIRED,
}

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Tracked:
    """An inventory job and its row in ``retrievals`` (``None`` for S3 and local)."""

    job: InventoryJob
    row: Retrieval | None


async def fetch_inventory(
    store: StateStore,
    backend: ListingBackend,
    destination: str,
    *,
    wait: bool,
    notify: Notify,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> tuple[Inventory, Retrieval | None]:
    """The destination's inventory, and the row of the job that produced it.

    A job still running raises :class:`~aglacier.errors.NotReadyError` (exit 14)
    saying when to come back, unless ``wait``: then it is polled with backoff.
    The caller marks the row done (:func:`finish_inventory`) once the archives
    are recorded.
    """
    tracked = await _current_job(store, backend, destination, notify)
    delay = FIRST_POLL
    if tracked.job.state is JobState.IN_PROGRESS and wait:
        notify(f"waiting for inventory job {tracked.job.job_id}: {_when_ready(tracked)}")
    while tracked.job.state is JobState.IN_PROGRESS:
        if not wait:
            raise _not_ready(destination, tracked)
        await sleep(delay)
        delay = min(delay * 2, MAX_POLL)
        tracked = await _record(store, tracked.row, await backend.inventory_status(tracked.job))
    if tracked.job.state is not JobState.READY:
        raise _gone(tracked.job)
    try:
        inventory = await backend.read_inventory(tracked.job)
    except NoSuchArchiveError:
        await _record(store, tracked.row, _with_state(tracked.job, JobState.EXPIRED))
        raise
    return inventory, tracked.row


async def finish_inventory(store: StateStore, row: Retrieval | None) -> None:
    """Mark the job's row done: its archives are in the catalog."""
    if row is not None:
        await shielded(store.update_retrieval, row.id, RetrievalState.DONE)


async def _current_job(
    store: StateStore, backend: ListingBackend, destination: str, notify: Notify
) -> Tracked:
    """The recorded job if it is still usable, else a job found on the vault or a new one."""
    rows = [
        r
        for r in await store.retrievals(active_only=True, destination=destination)
        if r.kind is RetrievalKind.INVENTORY and r.job_id is not None
    ]
    if rows:
        row = rows[-1]
        recorded = InventoryJob(JobState.IN_PROGRESS, job_id=row.job_id)
        tracked = await _record(store, row, await backend.inventory_status(recorded))
        if tracked.job.state in (JobState.IN_PROGRESS, JobState.READY):
            return tracked
        notify(f"inventory job {row.job_id} is {tracked.job.state}: requesting another")
    job = await backend.request_inventory()
    if job.job_id is None:
        return Tracked(job, None)  # S3, local: listed at once, nothing to track
    row = await shielded(
        store.add_retrieval,
        RetrievalKind.INVENTORY,
        destination,
        INVENTORY_TIER,
        job_id=job.job_id,
        detail=_detail(job),
    )
    found = "found on the vault" if job.requested_at is not None else "requested"
    notify(f"inventory job {job.job_id} {found} ({job.state})")
    if job.state is JobState.IN_PROGRESS:
        job = await backend.inventory_status(job)  # also learns when the vault accepted it
    return await _record(store, row, job)


async def _record(store: StateStore, row: Retrieval | None, job: InventoryJob) -> Tracked:
    """Bring the row's state in line with the job's (one write, only on a change)."""
    if row is not None and row.state is not _ROW_STATE[job.state]:
        detail = _detail(job) if job.detail or job.completed_at else None
        row = await shielded(store.update_retrieval, row.id, _ROW_STATE[job.state], detail=detail)
    return Tracked(job, row)


def _detail(job: InventoryJob) -> dict[str, object]:
    detail: dict[str, object] = {}
    if job.requested_at is not None:
        detail["vault_requested_at"] = job.requested_at.isoformat()
    if job.completed_at is not None:
        detail["vault_completed_at"] = job.completed_at.isoformat()
    if job.detail:
        detail["message"] = job.detail
    return detail


def _requested_at(tracked: Tracked) -> datetime:
    if tracked.job.requested_at is not None:
        return tracked.job.requested_at
    if tracked.row is not None:
        return tracked.row.requested_at
    return datetime.now(UTC)


def _when_ready(tracked: Tracked) -> str:
    requested = _requested_at(tracked)
    expected = requested + TYPICAL_DURATION
    return (
        f"requested {requested:%Y-%m-%d %H:%M} UTC; a vault usually takes 3 to 5 hours, "
        f"so expect it around {expected:%H:%M} UTC"
    )


def _not_ready(destination: str, tracked: Tracked) -> NotReadyError:
    expected = _requested_at(tracked) + TYPICAL_DURATION
    return NotReadyError(
        f"the inventory of {destination} is not ready yet: job {tracked.job.job_id}, "
        f"{_when_ready(tracked)}",
        hint=f"run `aglacier catalog rebuild` again after {expected:%Y-%m-%d %H:%M} UTC "
        "(the same job is used), or add --wait",
    )


def _gone(job: InventoryJob) -> AglacierError:
    why = f": {job.detail}" if job.detail else ""
    return AglacierError(
        f"inventory job {job.job_id} {job.state}{why}",
        hint="run `aglacier catalog rebuild` again to request a new inventory",
    )


def _with_state(job: InventoryJob, state: JobState) -> InventoryJob:
    return InventoryJob(state, job.job_id, job.requested_at, job.completed_at, job.detail)
