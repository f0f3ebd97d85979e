"""Getting an archive's verified ciphertext onto this machine: request (once), wait, download.

:func:`fetch` is what ``restore`` and ``verify`` share. It reuses the archive's
recorded retrieval if there is one still active (nothing is paid twice), else
shows the expected wait and cost, asks for confirmation, and requests one. While
the destination prepares it, :func:`fetch` raises :class:`NotReadyError` (exit
code 14) saying when to come back; once ready, it downloads what is missing and
checks it (see :mod:`aglacier.restore.download`). :func:`finish` marks the
retrieval done and removes the download spool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from aglacier.backends.base import Backend, Tier
from aglacier.errors import AglacierError, NoSuchArchiveError, NotReadyError
from aglacier.progress.events import Level, Message, Reporter, TaskProgress
from aglacier.restore.download import Download, download_path
from aglacier.restore.pricing import COLD_KINDS, WAITS, archive_kind, quote
from aglacier.restore.tracking import (
    Tracked,
    active_retrieval,
    refresh,
    request,
    shielded,
    start_download,
)
from aglacier.state import Archive, LogLevel, RetrievalState, StateStore
from aglacier.units import format_size

#: Shows the lines of a quote and says whether to go on (``--yes``, a prompt, or a refusal).
Confirm = Callable[[list[str]], Awaitable[bool]]


@dataclass
class Work:
    """What a restore or verification works with."""

    store: StateStore
    backend: Backend
    reporter: Reporter
    spool_dir: Path
    concurrency: int
    confirm: Confirm

    def say(self, text: str, level: Level = "info") -> None:
        self.reporter.emit(Message(level, text))

    async def log(self, event: str, text: str, **detail: object) -> None:
        """Record a line in the run log (shielded) without showing it."""
        await shielded(self.store.log, LogLevel.INFO, event, text, detail=dict(detail) or None)


class Declined(AglacierError):
    """The user answered no at the confirmation: nothing was requested (exit code 2)."""


async def fetch(work: Work, archive: Archive, *, tier: Tier, days: int) -> tuple[Tracked, Path]:
    """The archive's ciphertext, downloaded and verified; raises NotReadyError while waiting."""
    tracked = await _ready(work, archive, tier=tier, days=days)
    path = download_path(work.spool_dir, tracked.row.id)
    tracked = await start_download(work.store, tracked, path)
    ticker = _Ticker(work, f"downloading archive {archive.id}")
    download = Download(
        backend=work.backend,
        store=work.store,
        archive=archive,
        retrieval_id=tracked.row.id,
        remote=tracked.remote,
        path=path,
        concurrency=work.concurrency,
        progress=ticker.update,
        warn=lambda text: work.say(text, "warning"),
    )
    try:
        await download.run()
    except NoSuchArchiveError:
        await refresh(work.store, work.backend, tracked.row, archive)  # records an expiry
        raise
    ticker.done()
    work.say(f"archive {archive.id}: size, SHA256, tree hash and every part checked")
    return tracked, path


async def finish(work: Work, tracked: Tracked, path: Path) -> None:
    """The retrieval is done: forget its download and remove the download spool."""
    await shielded(work.store.finish_retrieval, tracked.row.id)
    with anyio.CancelScope(shield=True):
        await anyio.Path(path).unlink(missing_ok=True)


async def _ready(work: Work, archive: Archive, *, tier: Tier, days: int) -> Tracked:
    row = await active_retrieval(work.store, archive)
    if row is not None:
        tracked = await refresh(work.store, work.backend, row, archive)
        if tracked.row.state.active:
            if tracked.row.tier != str(tier) and not tracked.ready:
                work.say(
                    f"a {tracked.row.tier} retrieval of archive {archive.id} was already "
                    f"requested: waiting for it rather than paying for another"
                )
            return _check_ready(tracked, archive)
        work.say(
            f"the retrieval requested {_when(tracked.row.requested_at)} is "
            f"{tracked.row.state} ({tracked.remote.detail or 'no detail'}): "
            "requesting a new one",
            "warning",
        )
    lines = quote(archive, tier, days).lines()
    if archive_kind(archive) == "local":
        work.say(f"archive {archive.id}: " + lines[0])
    elif not await work.confirm([f"archive {archive.id} of {archive.source}:", *lines]):
        raise Declined("answered no: nothing was requested")
    tracked = await request(work.store, work.backend, archive, tier=tier, days=days)
    await work.log(
        "retrieval.requested",
        f"archive {archive.id}: {tier} retrieval requested from {archive.destination}",
        archive=archive.id,
        retrieval=tracked.row.id,
        tier=str(tier),
    )
    if not tracked.ready:  # asking costs nothing, and some retrievals are quick
        tracked = await refresh(work.store, work.backend, tracked.row, archive)
    return _check_ready(tracked, archive)


def _check_ready(tracked: Tracked, archive: Archive) -> Tracked:
    if tracked.ready:
        return tracked
    raise NotReadyError(not_ready_text(tracked, archive), hint=come_back_hint(tracked, archive))


def not_ready_text(tracked: Tracked, archive: Archive) -> str:
    """``the Standard retrieval of archive 3 (requested …) is not ready yet``."""
    return (
        f"the {tracked.row.tier} retrieval of archive {archive.id} "
        f"({format_size(archive.size)}, requested {_when(tracked.requested_at)}) is not ready yet"
    )


def come_back_hint(tracked: Tracked, archive: Archive) -> str:
    """When to run the command again, from the tier's published wait."""
    kind = archive_kind(archive)
    wait = WAITS.get((kind, Tier(tracked.row.tier))) if kind in COLD_KINDS else None
    if wait is None:
        return "run the same command again in a few minutes, or add --wait"
    due = tracked.requested_at + wait.high
    if due <= datetime.now(UTC):
        return (
            f"{tracked.row.tier} retrievals ({kind}) usually take {wait.text()}, and this one "
            "is taking longer: run the same command again later, or add --wait"
        )
    return (
        f"{tracked.row.tier} retrievals ({kind}) usually take {wait.text()}: run the same "
        f"command again after {_when(due)}, or add --wait"
    )


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@dataclass
class _Ticker:
    """Download progress as a bar (a line every 30 s under cron, JSON with --json)."""

    work: Work
    what: str
    _done: int = 0
    _total: int = 0

    def update(self, done: int, total: int) -> None:
        """Record progress (called once per part: cheap enough to pass on each time)."""
        self._done, self._total = done, total
        self.work.reporter.emit(TaskProgress("download", self.what, done, total))

    def done(self) -> None:
        """The download is complete."""
        self.work.reporter.emit(
            TaskProgress("download", self.what, self._done, self._total, finished=True)
        )


def retrieval_state_text(tracked: Tracked, archive: Archive) -> str:
    """One line for ``restore --status``."""
    row = tracked.row
    if row.state is RetrievalState.REQUESTED:
        return f"{not_ready_text(tracked, archive)}; {come_back_hint(tracked, archive)}"
    detail = f" ({tracked.remote.detail})" if tracked.remote.detail else ""
    return f"archive {archive.id}: {row.tier} retrieval {row.state}{detail}"
