"""The sentences every human-facing reporter shares, so that they say the same thing."""

from __future__ import annotations

from datetime import timedelta

from aglacier.progress.events import (
    AlreadyUploaded,
    Message,
    PartUploaded,
    PartUploading,
    Retrying,
    RunFinished,
    RunStarted,
    StagingDone,
)
from aglacier.units import format_duration, format_size

#: Outcomes ``--quiet`` leaves out: success, nothing to do, and a discard the user
#: asked for (``--restart``, whose warning shows anyway). It reports every other one.
UNREMARKABLE = frozenset({"done", "skipped", "aborted"})


def size_text(n: int) -> str:
    return format_size(max(0, int(n)))


def rate_text(rate: float | None) -> str:
    """``"12.5 MiB/s"``, or ``"-"`` before there is a rate."""
    return "-" if rate is None else f"{size_text(int(rate))}/s"


def percent_text(done: int, total: int, *, final: bool) -> str:
    """Whole percent, rounded down so that 100% means every byte."""
    if total <= 0:
        return "100%" if final else "?%"
    return f"{min(100, 100 * done // total)}%"


def duration_text(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))


def started_text(event: RunStarted) -> str:
    verb = "resuming" if event.resumed else "backing up"
    about = "" if event.resumed else "about "
    return (
        f"run {event.run_id}: {verb} {event.source} to {event.destination} "
        f"({about}{size_text(event.estimated_size)} in parts of {size_text(event.part_size)})"
    )


def staged_text(event: StagingDone) -> str:
    return f"run {event.run_id}: staged {size_text(event.size)} in {event.part_count} parts"


def already_text(event: AlreadyUploaded) -> str:
    return (
        f"run {event.run_id}: {event.part_count} parts ({size_text(event.size)}) already uploaded"
    )


def part_text(event: PartUploading | PartUploaded) -> str:
    verb = "uploading" if isinstance(event, PartUploading) else "uploaded"
    return f"run {event.run_id}: {verb} part {event.number} ({size_text(event.size)})"


def in_flight_text(count: int) -> str:
    return f"{count} part{'' if count == 1 else 's'} in flight"


def retry_text(event: Retrying) -> str:
    return (
        f"retrying {event.operation} in {event.delay:.1f} s "
        f"(attempt {event.attempt}): {event.error}"
    )


def message_text(event: Message) -> str:
    """The text with its level in front, except for plain information."""
    return event.text if event.level == "info" else f"{event.level}: {event.text}"


def summary_text(event: RunFinished, moved: int | None = None, *, id_width: int = 0) -> str:
    """One line on how a run ended.

    ``moved`` is what this session sent (the average rate leaves out what the
    server already had); ``id_width`` > 0 shortens a long archive id.
    """
    if event.outcome == "done":
        return f"run {event.run_id} done: {_stored_text(event, moved, id_width)}"
    if event.outcome == "resumable":
        return f"run {event.run_id} stopped; run `aglacier resume` to finish"
    return f"run {event.run_id} {event.outcome}"


def _stored_text(event: RunFinished, moved: int | None, id_width: int) -> str:
    text = f"archive {_shorten(event.archive_id or '?', id_width)}"
    if event.size is not None:
        text += f", {size_text(event.size)}"
    if event.seconds is None:
        return text
    text += f" in {duration_text(event.seconds)}"
    sent = event.size if moved is None else moved
    if sent and event.seconds > 0:
        # A resumed run sent less than the whole archive: say so, or the rate looks wrong.
        resent = "" if sent == event.size else f"{size_text(sent)} sent, "
        text += f" ({resent}{rate_text(sent / event.seconds)})"
    return text


def _shorten(text: str, width: int) -> str:
    # Glacier archive ids are 138 characters: whole in logs, elided on a terminal.
    if width <= 0 or len(text) <= width:
        return text
    head = (width - 1) * 2 // 3
    return f"{text[:head]}…{text[-(width - 1 - head) :]}"
