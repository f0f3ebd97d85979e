"""Live progress bars on a terminal: a staging bar and an upload bar per run."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, cast

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from aglacier.progress.events import (
    AlreadyUploaded,
    Event,
    Message,
    PartUploaded,
    PartUploading,
    Retrying,
    RunFinished,
    RunStarted,
    StagingProgress,
    TaskProgress,
)
from aglacier.progress.outstream import GuardedStream
from aglacier.progress.plain import RunEvent
from aglacier.progress.tally import RunTally
from aglacier.progress.wording import (
    already_text,
    duration_text,
    in_flight_text,
    message_text,
    part_text,
    percent_text,
    rate_text,
    retry_text,
    started_text,
    summary_text,
)
from aglacier.units import GiB, KiB, MiB, TiB, format_size

REFRESH_PER_SECOND = 10
PUSH_GAP = 0.1  # staging progress reaches the bars at most this often (the refresh rate)
ID_WIDTH = 40  # a Glacier archive id (138 characters) would take two lines

# (field of _Row, minimum width, justification, style): fixed widths keep the
# columns from shifting as numbers grow a digit.
_FIELDS: tuple[tuple[str, int, JustifyMethod, str], ...] = (
    ("pct", 4, "right", "progress.percentage"),
    ("bytes", 15, "right", "progress.download"),
    ("rate", 12, "right", "progress.data.speed"),
    ("eta", 10, "left", "progress.remaining"),
    ("status", 17, "left", "dim"),
)
_DESCRIPTION_WIDTH = 7
_NOT_BAR_WIDTH = _DESCRIPTION_WIDTH + sum(f[1] for f in _FIELDS) + len(_FIELDS) + 2
_MESSAGE_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}
_OUTCOME_STYLES = {"done": "bold green", "skipped": "dim", "resumable": "yellow"}
_UNITS = (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))


@dataclass(frozen=True)
class _Row:
    """One bar: its position and what the text columns say."""

    completed: int
    total: int | None  # None: unknown, rich pulses the bar
    visible: bool
    pct: str
    bytes: str
    rate: str
    eta: str
    status: str


@dataclass
class _Bars:
    tally: RunTally
    staging: TaskID
    upload: TaskID
    pushed_at: float = -math.inf


class RichReporter:
    """Progress bars on a terminal; messages and summaries scroll above them.

    ``emit`` updates counters under a lock and hands rich new numbers at most
    every ``PUSH_GAP`` seconds; rich redraws from its own thread ten times a
    second. ``force_terminal`` and ``width`` are passed to rich's ``Console``
    (tests and demos use them). ``verbose`` ≥ 1 shows debug messages, ≥ 2 a
    line per part.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        verbose: int = 0,
        force_terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        # The guard has all of a file that rich uses: write, flush, isatty, fileno, encoding.
        guarded = cast(IO[str], GuardedStream(stream))
        self._console = Console(
            file=guarded, stderr=True, force_terminal=force_terminal, width=width, highlight=False
        )
        self._progress = Progress(
            *_columns(self._console.width),
            console=self._console,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,  # stdout is the command's real output, never the bars'
            redirect_stderr=stream is sys.stderr,  # stray stderr lines print above the bars
        )
        self._verbose = verbose
        # Taken before rich's own locks, never inside them: rich's refresh thread
        # only reads the _Row values handed to it, so it never waits for this one.
        self._lock = threading.Lock()
        self._runs: dict[int, _Bars] = {}
        self._tasks: dict[str, tuple[TaskID, float]] = {}  # label → bar, start time
        self._live = False
        self._closed = False

    def emit(self, event: Event) -> None:
        """Fold ``event`` into the bars or print it above them; never raises."""
        now = time.monotonic()
        with contextlib.suppress(Exception), self._lock:
            if not self._closed:
                self._handle(event, now)

    def close(self) -> None:
        """Stop the live display, leaving its last frame; later events are ignored."""
        with contextlib.suppress(Exception), self._lock:
            if not self._closed:
                self._closed = True
                if self._live:
                    self._progress.stop()

    def _handle(self, event: Event, now: float) -> None:
        match event:
            case RunStarted():
                self._start_run(event, now)
            case Message():
                if event.level != "debug" or self._verbose >= 1:
                    self._print(message_text(event), _MESSAGE_STYLES.get(event.level, ""))
            case Retrying():
                self._print(retry_text(event), "dim")
            case RunFinished():
                self._finish_run(event)
            case TaskProgress():
                self._task_progress(event, now)
            case _:
                self._track(event, now)

    def _start_run(self, event: RunStarted, now: float) -> None:
        self._drop_bars(event.run_id)
        self._print(started_text(event), "")
        if not self._live:
            self._progress.start()
            self._live = True
        tally = RunTally.start(event, now)
        staging = self._add_task("staging", _staging(tally))
        upload = self._add_task("upload", _upload(tally))
        self._runs[event.run_id] = _Bars(tally, staging, upload)

    def _track(self, event: RunEvent, now: float) -> None:
        bars = self._runs.get(event.run_id)
        if bars is None:
            return
        bars.tally.apply(event, now)
        if isinstance(event, AlreadyUploaded):
            self._print(already_text(event), "dim")
        elif isinstance(event, PartUploading | PartUploaded) and self._verbose >= 2:
            self._print(part_text(event), "dim")
        if not isinstance(event, StagingProgress) or now - bars.pushed_at >= PUSH_GAP:
            bars.pushed_at = now
            self._update(bars.staging, _staging(bars.tally))
            self._update(bars.upload, _upload(bars.tally))

    def _add_task(self, description: str, row: _Row) -> TaskID:
        # The row goes in with the task: rich may draw it before the first update.
        return self._progress.add_task(
            description, completed=row.completed, total=row.total, visible=row.visible, row=row
        )

    def _update(self, task: TaskID, row: _Row) -> None:
        self._progress.update(
            task, completed=row.completed, total=row.total, visible=row.visible, row=row
        )

    def _finish_run(self, event: RunFinished) -> None:
        bars = self._drop_bars(event.run_id)
        moved = None if bars is None else bars.tally.acked
        style = _OUTCOME_STYLES.get(event.outcome, "bold red")
        self._print(summary_text(event, moved, id_width=ID_WIDTH), style)

    def _task_progress(self, event: TaskProgress, now: float) -> None:
        if not self._live:
            self._progress.start()
            self._live = True
        known = self._tasks.get(event.label)
        started = now if known is None else known[1]
        row = _task_row(event, now - started)
        if known is None:
            self._tasks[event.label] = (self._add_task(event.label, row), now)
        else:
            self._update(known[0], row)
        if event.finished:
            task, _ = self._tasks.pop(event.label)
            self._progress.remove_task(task)
            self._progress.refresh()
            self._print(task_done_text(event, now - started), "dim")

    def _drop_bars(self, run_id: int) -> _Bars | None:
        bars = self._runs.pop(run_id, None)
        if bars is not None:
            self._progress.remove_task(bars.staging)
            self._progress.remove_task(bars.upload)
            self._progress.refresh()  # redraw without them before a line prints above
        return bars

    def _print(self, text: str, style: str) -> None:
        self._console.print(Text(text, style=style))  # Text: no markup in file names


def _columns(console_width: int) -> list[ProgressColumn]:
    bar_width = max(10, min(40, console_width - _NOT_BAR_WIDTH))
    description = Column(min_width=_DESCRIPTION_WIDTH, no_wrap=True)
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", markup=False, table_column=description),
        BarColumn(bar_width=bar_width),
    ]
    for name, width, justify, style in _FIELDS:
        column = Column(min_width=width, justify=justify, no_wrap=True)
        text = f"{{task.fields[row].{name}}}"
        columns.append(
            TextColumn(text, style=style, justify=justify, markup=False, table_column=column)
        )
    return columns


def _staging(tally: RunTally) -> _Row:
    done = tally.staged is not None
    seconds = tally.staging_seconds
    return _row(
        tally.spooled,
        tally.total,
        final=done,
        visible=not tally.resumed or tally.staging_seen,
        rate=rate_text(tally.staging_speed()),
        eta="",
        status=f"done in {duration_text(seconds)}" if done and seconds is not None else "",
    )


def _upload(tally: RunTally) -> _Row:
    eta = tally.eta()
    status = "done" if tally.upload_done else in_flight_text(len(tally.in_flight))
    return _row(
        tally.uploaded,
        tally.total,
        final=tally.size_final,
        visible=True,
        rate=rate_text(tally.upload_rate.rate()),
        eta="" if eta is None else f"eta {duration_text(eta)}",
        status=status,
    )


def _task_row(event: TaskProgress, seconds: float) -> _Row:
    if event.unit == "seconds":
        waited = f"waited {duration_text(event.done)}"
        return _Row(0, None, True, pct="", bytes=waited, rate="", eta="", status=event.text)
    total = event.total if event.total is not None else event.done
    speed = event.done / seconds if seconds > 0.5 else None
    return _row(
        event.done, total, final=True, visible=True, rate=rate_text(speed), eta="",
        status=event.text,
    )  # fmt: skip


def task_done_text(event: TaskProgress, seconds: float) -> str:
    """``download done: 48 MiB in 12s`` (a finished task's last line)."""
    if event.unit == "seconds":
        return f"{event.text}: ready after {duration_text(event.done)}"
    return f"{event.text}: {format_size(event.done)} in {duration_text(seconds)}"


def _row(
    done: int, total: int, *, final: bool, visible: bool, rate: str, eta: str, status: str
) -> _Row:
    completed, bar_total = min(done, total), total if total > 0 else None
    if total <= 0 and final:
        completed, bar_total = 1, 1  # an empty archive is a full bar (rich divides by the total)
    return _Row(
        completed,
        bar_total,
        visible,
        pct=percent_text(done, total, final=final),
        bytes=bytes_pair(done, total, final=final),
        rate=rate,
        eta=eta,
        status=status,
    )


def bytes_pair(done: int, total: int, *, final: bool) -> str:
    """``"0.50/~2.10 GiB"``: both in the total's unit, ``~`` while the total is a guess."""
    unit, factor = next(((u, f) for u, f in _UNITS if total >= f), ("B", 1))
    # Two decimals below ten units: a tenth of 2 GiB is 100 MiB, too coarse a step.
    digits = 0 if factor == 1 else 2 if total < 10 * factor else 1
    total_text = f"{total / factor:.{digits}f}"
    done_text = f"{done / factor:.{digits}f}".rjust(len(total_text))
    return f"{done_text}/{'' if final else '~'}{total_text} {unit}"
