"""Turn a destination's inventory into catalog rows: what to add, what is known, what to skip.

Rows already in the catalog (same destination and archive id) are left alone,
so a rebuild can be run again and adds nothing twice. What the destination
cannot tell is filled in with documented placeholders (see ``docs/catalog.md``):

- a vault keeps no plain SHA256 of an archive: ``sha256`` is :data:`UNKNOWN_SHA256`;
- a foreign vault archive (``--all``) has no source, host or part size: the
  source is its description, the host is empty, and the part size the one
  aglacier would plan for its size (any 1 MiB × 2^n reads a vault archive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aglacier.backends.base import Inventory, ListedArchive, SkipReason
from aglacier.backends.limits import VAULT_LIMITS
from aglacier.engine.context import shielded
from aglacier.engine.planner import plan_part_size
from aglacier.state import Archive, LogLevel, StateStore

#: The catalog's ``sha256`` of an archive whose SHA256 the destination does not
#: keep (every vault archive rebuilt from an inventory). The column must hold 64
#: hex digits; no real SHA256 is all zeros, so this value means "unknown": check
#: the tree hash instead, and learn the SHA256 when the archive is next read whole.
UNKNOWN_SHA256 = "0" * 64

#: Why an archive the inventory listed was not added (besides the backend's reasons).
DIFFERS = "differs"  # the catalog knows the id with another size or tree hash
FOREIGN_SOURCE = "(foreign archive)"  # a foreign archive without a description


@dataclass(frozen=True)
class Skipped:
    """Something not added to the catalog, and why (a ``SkipReason`` value or ``differs``)."""

    name: str
    reason: str
    detail: str

    @property
    def needs_a_look(self) -> bool:
        """A foreign object is normal; anything else deserves a person's attention."""
        return self.reason != SkipReason.FOREIGN


@dataclass
class RebuildResult:
    """What a rebuild found and did (or, in a dry run, would do)."""

    destination: str
    dry_run: bool
    taken_at: datetime | None  # a vault inventory's date; None: listed just now
    found: int = 0  # archives the inventory listed, aglacier's and foreign
    added: list[ListedArchive] = field(default_factory=list)
    known: list[ListedArchive] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def needs_a_look(self) -> bool:
        """Whether anything skipped deserves attention (the command then exits 1)."""
        return any(s.needs_a_look for s in self.skipped)


async def rebuild_catalog(
    store: StateStore,
    destination: str,
    inventory: Inventory,
    *,
    include_foreign: bool = False,
    dry_run: bool = False,
) -> RebuildResult:
    """Add every archive of ``inventory`` the catalog does not know yet.

    Foreign archives are added only with ``include_foreign``. Each row is its own
    shielded transaction, so an interrupted rebuild keeps what it added and a
    second run adds the rest.
    """
    result = RebuildResult(destination, dry_run, inventory.taken_at, len(inventory.archives))
    result.skipped = [Skipped(s.name, s.reason, s.detail) for s in inventory.skipped]
    known = {a.archive_id: a for a in await store.archives(destination=destination)}
    for listed in inventory.archives:
        recorded = known.get(listed.archive_id)
        if recorded is not None:
            _sort_known(result, listed, recorded)
        elif listed.foreign and not include_foreign:
            result.skipped.append(Skipped(listed.archive_id, SkipReason.FOREIGN, _foreign(listed)))
        else:
            if not dry_run:
                await add_listed(store, destination, listed)
            result.added.append(listed)
    if not dry_run:
        await _log(store, result)
    return result


async def add_listed(store: StateStore, destination: str, listed: ListedArchive) -> Archive:
    """Record one listed archive, with the placeholders the module docstring describes."""
    return await shielded(
        store.add_archive,
        Path(listed.source or listed.description or FOREIGN_SOURCE),
        destination,
        listed.archive_id,
        size=listed.size,
        sha256=listed.sha256 or UNKNOWN_SHA256,
        tree_hash=listed.tree_hash,
        part_size=listed.part_size or foreign_part_size(listed.size),
        host=listed.host or "",
        created_at=listed.created_at,
        storage_class=listed.storage_class,
        description=listed.description,
        manifest=dict(listed.manifest) if listed.manifest is not None else None,
    )


def foreign_part_size(size: int) -> int:
    """A part size to read a foreign vault archive in: what aglacier would plan for it."""
    return plan_part_size(size, VAULT_LIMITS, headroom=1.0)


def _sort_known(result: RebuildResult, listed: ListedArchive, recorded: Archive) -> None:
    if (recorded.size, recorded.tree_hash) == (listed.size, listed.tree_hash):
        result.known.append(listed)
        return
    result.skipped.append(
        Skipped(
            listed.archive_id,
            DIFFERS,
            f"the catalog has it with {recorded.size} bytes and tree hash "
            f"{recorded.tree_hash}; the destination says {listed.size} and {listed.tree_hash}",
        )
    )


def _foreign(listed: ListedArchive) -> str:
    described = f"description {listed.description!r}" if listed.description else "no description"
    return f"not written by aglacier ({described}); --all adds it"


async def _log(store: StateStore, result: RebuildResult) -> None:
    message = (
        f"catalog rebuilt from {result.destination}: {result.found} archives found, "
        f"{len(result.added)} added, {len(result.known)} already known, "
        f"{len(result.skipped)} skipped"
    )
    detail: dict[str, object] = {
        "destination": result.destination,
        "found": result.found,
        "added": [a.archive_id for a in result.added],
        "known": len(result.known),
        "skipped": {s.name: s.reason for s in result.skipped},
    }
    level = LogLevel.WARNING if result.needs_a_look else LogLevel.INFO
    await shielded(store.log, level, "catalog.rebuilt", message, detail=detail)
