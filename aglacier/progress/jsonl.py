"""Events as JSON lines, for scripts and ``jq``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import re
import threading
import time
from datetime import UTC, datetime
from typing import IO

from aglacier.progress.events import (
    Event,
    RunFinished,
    StagingDone,
    StagingProgress,
    TaskProgress,
)
from aglacier.progress.outstream import GuardedStream


class JsonReporter:
    """One JSON object per event per line, flushed per line.

    Each line is ``{"event": "part_uploaded", "time": "…Z", …the event's
    fields}``, ASCII only (a file name that is not UTF-8 arrives escaped, never
    as bytes ``jq`` rejects). ``staging_progress`` is thinned to one line per
    run every ``staging_interval`` seconds. The latest one held back is written
    just before that run's ``staging_done`` or ``run_finished`` (so the final
    count is never lost) and on :meth:`close`, stamped with the time it is
    written: a count is a lower bound, and times never go backwards.
    """

    def __init__(self, stream: IO[str], *, staging_interval: float = 0.5) -> None:
        self._out = GuardedStream(stream)
        self._interval = staging_interval
        self._lock = threading.Lock()
        self._last_staging: dict[int, float] = {}
        self._held: dict[int, StagingProgress] = {}
        self._last_task: dict[str, float] = {}  # label → when its last line was written
        self._closed = False

    def emit(self, event: Event) -> None:
        """Write ``event`` as a line (or hold it back, for staging progress); never raises."""
        with contextlib.suppress(Exception), self._lock:
            if self._closed:
                return
            # Stamped under the lock, so that times never go backwards down the stream.
            wall, now = time.time(), time.monotonic()
            if isinstance(event, StagingProgress):
                self._staging(event, wall, now)
                return
            if isinstance(event, TaskProgress) and not event.finished:
                if now - self._last_task.get(event.label, -math.inf) < self._interval:
                    return
                self._last_task[event.label] = now
            if isinstance(event, StagingDone | RunFinished):
                self._release(event.run_id, wall)
            if isinstance(event, RunFinished):
                self._last_staging.pop(event.run_id, None)
            self._write(event, wall)

    def close(self) -> None:
        """Write held-back staging progress; later events are ignored."""
        with contextlib.suppress(Exception), self._lock:
            if not self._closed:
                self._closed = True
                for run_id in list(self._held):
                    self._release(run_id, time.time())

    def _staging(self, event: StagingProgress, wall: float, now: float) -> None:
        if now - self._last_staging.get(event.run_id, -math.inf) < self._interval:
            self._held[event.run_id] = event
            return
        self._held.pop(event.run_id, None)
        self._last_staging[event.run_id] = now
        self._write(event, wall)

    def _release(self, run_id: int, wall: float) -> None:
        held = self._held.pop(run_id, None)
        if held is not None:
            self._write(held, wall)

    def _write(self, event: Event, wall: float) -> None:
        self._out.write(json.dumps(as_record(event, wall)) + "\n")
        self._out.flush()


def as_record(event: Event, wall: float) -> dict[str, object]:
    """The JSON object for ``event`` at ``wall`` (seconds since the epoch)."""
    stamp = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
    record: dict[str, object] = {
        "event": event_name(type(event).__name__),
        "time": stamp[:-6] + "Z",
    }
    for field in dataclasses.fields(event):
        record[field.name] = getattr(event, field.name)
    return record


@functools.cache
def event_name(class_name: str) -> str:
    """``"PartUploaded"`` → ``"part_uploaded"``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
