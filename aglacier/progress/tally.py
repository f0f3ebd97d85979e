"""What a human-facing reporter knows about one run: counters, rates, an ETA.

Not thread-safe on its own: each reporter guards its tallies with its lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from aglacier.progress.events import (
    AlreadyUploaded,
    Event,
    PartUploaded,
    PartUploading,
    RunStarted,
    StagingDone,
    StagingProgress,
)


class RateMeter:
    """Bytes per second over a sliding window, fed with running totals.

    Samples closer together than ``min_gap`` are merged, so that hundreds of
    updates a second cost a deque write each and the deque stays small.
    """

    def __init__(self, *, window: float = 20.0, min_gap: float = 0.2) -> None:
        self._window = window
        self._min_gap = min_gap
        self._samples: deque[tuple[float, int]] = deque()
        self._last_append = -math.inf

    def add(self, now: float, total: int) -> None:
        """Record that ``total`` bytes were done at time ``now`` (monotonic seconds)."""
        if len(self._samples) >= 2 and now - self._last_append < self._min_gap:
            self._samples[-1] = (now, total)
            return
        self._samples.append((now, total))
        self._last_append = now
        # Keep one sample at or before the window's start so the span covers the window.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Bytes per second, or None before there are two samples."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None


@dataclass
class RunTally:
    """Counters of one run, updated by :meth:`apply`."""

    run_id: int
    estimate: int
    resumed: bool
    started_at: float
    part_size: int = 0
    spooled: int = 0
    staged: StagingDone | None = None
    staging_seconds: float | None = None
    staging_seen: bool = False
    acked: int = 0  # bytes acknowledged in this session (the rate's base)
    already: int = 0  # bytes the server had before this session
    in_flight: set[int] = field(default_factory=set)
    done_parts: set[int] = field(default_factory=set)
    staging_rate: RateMeter = field(default_factory=RateMeter)
    upload_rate: RateMeter = field(default_factory=RateMeter)
    upload_started: bool = False

    @classmethod
    def start(cls, event: RunStarted, now: float) -> RunTally:
        tally = cls(event.run_id, event.estimated_size, event.resumed, now, event.part_size)
        tally.staging_rate.add(now, 0)
        return tally

    def apply(self, event: Event, now: float) -> None:
        """Fold one event of this run into the counters."""
        match event:
            case StagingProgress(spooled=spooled):
                self.staging_seen = True
                self.spooled = max(self.spooled, spooled)
                self.staging_rate.add(now, self.spooled)
            case StagingDone():
                self.staging_seen = True
                self.staged = event
                self.spooled = event.size
                self.staging_seconds = now - self.started_at
            case PartUploading(number=number, size=size):
                # Parts are spooled in order and sent only once on disk, so the
                # staging count is at least this part's end (progress lags a bit).
                if self.staged is None and not self.resumed:
                    self.spooled = max(self.spooled, number * self.part_size + size)
                self._begin_upload(now)
                if number not in self.done_parts:
                    self.in_flight.add(number)
            case PartUploaded(number=number, size=size):
                self._begin_upload(now)
                self.in_flight.discard(number)
                if number not in self.done_parts:  # a part sent twice counts once
                    self.done_parts.add(number)
                    self.acked += size
                    self.upload_rate.add(now, self.acked)
            case AlreadyUploaded(size=size):
                self.already += size

    def _begin_upload(self, now: float) -> None:
        if not self.upload_started:
            self.upload_started = True
            self.upload_rate.add(now, 0)

    @property
    def size_final(self) -> bool:
        """Whether :attr:`total` is the archive's real size rather than the plan's guess.

        A resumed run that never stages again started with the real size.
        """
        return self.staged is not None or (self.resumed and not self.staging_seen)

    @property
    def total(self) -> int:
        """The archive's size: real once known, else the estimate (never below what is done)."""
        if self.staged is not None:
            return self.staged.size
        return max(self.estimate, self.spooled, self.uploaded)

    @property
    def uploaded(self) -> int:
        return self.already + self.acked

    @property
    def upload_done(self) -> bool:
        return self.size_final and self.uploaded >= self.total and not self.in_flight

    def staging_speed(self) -> float | None:
        """Current staging rate; the average once staging is done."""
        if self.staged is not None and self.staging_seconds:
            return self.staged.size / self.staging_seconds
        return self.staging_rate.rate()

    def eta(self) -> float | None:
        """Seconds until every byte is acknowledged at the current upload rate."""
        rate = self.upload_rate.rate()
        if not rate or rate <= 0 or self.upload_done:
            return None
        return max(0, self.total - self.uploaded) / rate
