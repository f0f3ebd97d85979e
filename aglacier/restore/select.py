"""Which archive a restore or verification is about: by catalog id, archive id, or source."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from aglacier.errors import UsageError
from aglacier.state import Archive, RecordNotFoundError, StateStore


def parse_date(text: str) -> date:
    """``YYYY-MM-DD``, or a :class:`UsageError` naming the option."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--date {text!r}: expected a date as YYYY-MM-DD") from None


async def select_archive(store: StateStore, target: str, *, on_or_before: date | None) -> Archive:
    """The archive ``target`` names in the catalog.

    ``target`` is a catalog id (digits: ``aglacier list``'s ``#``), an archive id
    (a vault archive id, an S3 key, a local file name), or a source folder, which
    picks that source's newest archive, or with ``on_or_before`` its newest one
    created on or before that day (UTC). A folder whose name is only digits is
    named as ``./123``.
    """
    if target.isdigit():
        if on_or_before is not None:
            raise UsageError("--date chooses among a source's archives: name a SOURCE, not an id")
        try:
            return await store.get_archive(int(target))
        except RecordNotFoundError:
            raise UsageError(
                f"there is no archive {target} in the catalog (see `aglacier list`)"
            ) from None
    archives = await store.archives()
    named = [a for a in archives if a.archive_id == target]
    if len(named) > 1:
        ids = ", ".join(str(a.id) for a in named)
        raise UsageError(f"archive id {target} is in several destinations: name one of {ids}")
    if named:
        if on_or_before is not None:
            raise UsageError("--date chooses among a source's archives: name a SOURCE")
        return named[0]
    return _newest_of_source(archives, target, on_or_before)


def _newest_of_source(archives: list[Archive], target: str, on_or_before: date | None) -> Archive:
    sources = _source_paths(target)
    found = [a for a in archives if a.source in sources]
    if on_or_before is not None:
        limit = datetime.combine(on_or_before, time(), tzinfo=UTC) + timedelta(days=1)
        found = [a for a in found if a.created_at < limit]
    if not found:
        shown = sources[0]
        when = f" on or before {on_or_before.isoformat()}" if on_or_before else ""
        raise UsageError(
            f"no archive of {shown}{when} in the catalog, and no archive has the id {target!r}",
            hint="`aglacier list` shows the catalog",
        )
    return max(found, key=lambda a: (a.created_at, a.id))


def _source_paths(target: str) -> list[Path]:
    """The absolute path as typed, and with links resolved (backups record the latter)."""
    typed = Path(target).expanduser().absolute()
    resolved = typed.resolve()
    return [typed] if resolved == typed else [typed, resolved]
