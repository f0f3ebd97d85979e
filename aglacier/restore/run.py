"""The two things a person asks for: restore an archive, or verify one.

Both take a :class:`~aglacier.restore.fetch.Work` (state, backend, reporter,
spool folder, concurrency, how to confirm a cost) and an archive from the catalog.
Everything that can be checked locally is checked before a retrieval is requested:
the tier, where the files go, free space, and (for a restore) that gpg can decrypt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from aglacier.backends.base import Tier
from aglacier.restore.decrypt import Decryption
from aglacier.restore.fetch import Work, fetch, finish
from aglacier.restore.pricing import archive_kind, check_tier, default_tier
from aglacier.restore.unpack import Target, check_room, extract, keep, plan_target
from aglacier.state import Archive


@dataclass(frozen=True)
class Retrieve:
    """How to retrieve: ``tier`` None means the default for the command."""

    tier: Tier | None
    days: int

    def tier_for(self, archive: Archive, *, urgent: bool) -> Tier:
        """The tier to use, refused up front if the archive's storage has no such tier."""
        tier = self.tier or default_tier(archive_kind(archive), urgent=urgent)
        check_tier(archive, tier)
        return tier


@dataclass(frozen=True)
class Destination:
    """Where a restore goes, as given on the command line."""

    to: Path | None
    archive_only: bool
    overwrite: bool


async def restore_archive(
    work: Work,
    archive: Archive,
    retrieve: Retrieve,
    destination: Destination,
    decryption: Callable[[], Decryption],
) -> Path:
    """Restore ``archive``; returns the folder (or the ``--archive-only`` file) written.

    ``decryption`` is called (in a worker thread) before anything is requested.
    Raises NotReadyError (14) while the retrieval is prepared, IntegrityError (12)
    when the download does not match, GpgError (7) when it cannot be decrypted.
    """
    tier = retrieve.tier_for(archive, urgent=True)
    target: Target = await anyio.to_thread.run_sync(
        lambda: plan_target(
            archive,
            destination.to,
            archive_only=destination.archive_only,
            overwrite=destination.overwrite,
        )
    )
    await anyio.to_thread.run_sync(check_room, target, archive.size)
    checked = None if target.archive_only else await anyio.to_thread.run_sync(decryption)
    tracked, download = await fetch(work, archive, tier=tier, days=retrieve.days)
    if checked is None:
        await keep(download, target)
        work.say(f"archive {archive.id}: the verified encrypted archive is {target.path}")
    else:
        names = await extract(work, archive, download, target, checked)
        shown = ", ".join(str(target.path / name) for name in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        work.say(f"archive {archive.id} of {archive.source} restored: {shown}{more}")
    await finish(work, tracked, download)
    await work.log(
        "restore.done",
        f"archive {archive.id} restored to {target.path}",
        archive=archive.id,
        to=str(target.path),
    )
    return target.path


async def verify_archive(work: Work, archive: Archive, retrieve: Retrieve) -> None:
    """Retrieve ``archive`` and check every checksum, decrypting nothing.

    Returns when everything matches; raises IntegrityError (12) otherwise, and
    NotReadyError (14) while the retrieval is prepared.
    """
    tier = retrieve.tier_for(archive, urgent=False)
    tracked, download = await fetch(work, archive, tier=tier, days=retrieve.days)
    await finish(work, tracked, download)
    await work.log("verify.ok", f"archive {archive.id} verified", archive=archive.id)
    work.say(f"archive {archive.id} of {archive.source} is intact ({archive.destination})")
