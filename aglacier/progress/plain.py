"""Line reporters: timestamped log lines for cron, and what ``--quiet`` leaves."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime
from typing import IO

from aglacier.progress.events import (
    AlreadyUploaded,
    Event,
    Message,
    PartUploaded,
    PartUploading,
    Retrying,
    RunFinished,
    RunStarted,
    StagingDone,
    StagingProgress,
    TaskProgress,
)
from aglacier.progress.outstream import GuardedStream
from aglacier.progress.tally import RunTally
from aglacier.progress.wording import (
    UNREMARKABLE,
    already_text,
    duration_text,
    in_flight_text,
    message_text,
    part_text,
    percent_text,
    rate_text,
    retry_text,
    size_text,
    staged_text,
    started_text,
    summary_text,
)
from aglacier.units import format_size

RunEvent = StagingProgress | StagingDone | PartUploading | PartUploaded | AlreadyUploaded


class PlainReporter:
    """Timestamped lines for cron and log files: no colour, no cursor movement.

    Every message, retry and run summary gets a line. Progress gets one line
    per active run at most every ``interval`` seconds, written on the first
    event after the interval ends (a long, quiet part upload prints nothing
    until it ends). ``verbose`` ≥ 1 adds debug messages, ≥ 2 a line per part.
    """

    def __init__(self, stream: IO[str], *, verbose: int = 0, interval: float = 30.0) -> None:
        self._out = GuardedStream(stream)
        self._verbose = verbose
        self._interval = interval
        self._lock = threading.Lock()
        self._runs: dict[int, RunTally] = {}
        self._last_progress = time.monotonic()
        self._task_shown: dict[str, float] = {}  # label → when its last line was written
        self._closed = False

    def emit(self, event: Event) -> None:
        """Write what ``event`` deserves; never raises."""
        with contextlib.suppress(Exception), self._lock:
            if not self._closed:
                self._handle(event, time.monotonic())

    def close(self) -> None:
        """Flush; later events are ignored."""
        with contextlib.suppress(Exception), self._lock:
            self._closed = True
            self._out.flush()

    def _handle(self, event: Event, now: float) -> None:
        match event:
            case RunStarted():
                self._runs[event.run_id] = RunTally.start(event, now)
                self._line(started_text(event))
            case Message():
                if event.level != "debug" or self._verbose >= 1:
                    self._line(message_text(event))
            case Retrying():
                self._line(retry_text(event))
            case RunFinished():
                tally = self._runs.pop(event.run_id, None)
                self._line(summary_text(event, None if tally is None else tally.acked))
            case TaskProgress():
                self._task(event, now)
            case _:
                self._track(event, now)

    def _track(self, event: RunEvent, now: float) -> None:
        tally = self._runs.get(event.run_id)
        if tally is None:
            return
        tally.apply(event, now)
        if isinstance(event, StagingDone):
            self._line(staged_text(event))
        elif isinstance(event, AlreadyUploaded):
            self._line(already_text(event))
        elif isinstance(event, PartUploading | PartUploaded) and self._verbose >= 2:
            self._line(part_text(event))
        if now - self._last_progress >= self._interval:
            self._last_progress = now
            for active in self._runs.values():
                self._line(progress_text(active))

    def _task(self, event: TaskProgress, now: float) -> None:
        last = self._task_shown.get(event.label)
        if event.finished:
            self._task_shown.pop(event.label, None)
        elif last is not None and now - last < self._interval:
            return
        else:
            self._task_shown[event.label] = now
        self._line(task_text(event))

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self._out.write(f"{stamp} aglacier: {text}\n")
        self._out.flush()


def progress_text(tally: RunTally) -> str:
    """``run 3: staging 45% (…); upload 30% (…)`` for a log line."""
    pieces = []
    if tally.staging_seen and tally.staged is None:
        pieces.append(
            f"staging {percent_text(tally.spooled, tally.total, final=False)} "
            f"({size_text(tally.spooled)} of ~{size_text(tally.total)}, "
            f"{rate_text(tally.staging_speed())})"
        )
    about = "" if tally.size_final else "~"
    upload = (
        f"upload {percent_text(tally.uploaded, tally.total, final=tally.size_final)} "
        f"({size_text(tally.uploaded)} of {about}{size_text(tally.total)}, "
        f"{rate_text(tally.upload_rate.rate())}"
    )
    eta = tally.eta()
    if eta is not None:
        upload += f", eta {duration_text(eta)}"
    pieces.append(f"{upload}, {in_flight_text(len(tally.in_flight))})")
    return f"run {tally.run_id}: " + "; ".join(pieces)


def task_text(event: TaskProgress) -> str:
    """``downloading archive 3: 12 MiB of 48 MiB (25 %)`` or ``...: waited 2h5m``."""
    if event.unit == "seconds":
        state = "ready" if event.finished else "waiting"
        return f"{event.text}: {state} after {duration_text(event.done)}"
    total = event.total if event.total is not None else event.done
    percent = 100 * event.done // total if total else 100
    return f"{event.text}: {format_size(event.done)} of {format_size(total)} ({percent} %)"


class QuietReporter:
    """Warnings, errors and runs that did not succeed; nothing else."""

    def __init__(self, stream: IO[str]) -> None:
        self._out = GuardedStream(stream)
        self._lock = threading.Lock()
        self._closed = False

    def emit(self, event: Event) -> None:
        """Write ``event`` if it is a warning, an error or a failed run; never raises."""
        with contextlib.suppress(Exception), self._lock:
            text = _quiet_text(event)
            if text is not None and not self._closed:
                self._out.write(f"aglacier: {text}\n")
                self._out.flush()

    def close(self) -> None:
        """Later events are ignored."""
        with self._lock:
            self._closed = True


def _quiet_text(event: Event) -> str | None:
    if isinstance(event, Message) and event.level in ("warning", "error"):
        return message_text(event)
    if isinstance(event, RunFinished) and event.outcome not in UNREMARKABLE:
        return summary_text(event)
    return None
