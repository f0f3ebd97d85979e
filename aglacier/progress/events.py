"""What the engine says while it works, as plain data.

The engine emits events; a :class:`Reporter` renders them: rich progress bars
on a terminal, plain log lines under cron, JSON lines for scripts, or nothing.
``emit`` may be called from worker threads (staging runs in one) and must be
cheap: a renderer throttles what it draws, the engine does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Level = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class RunStarted:
    run_id: int
    source: str
    destination: str
    estimated_size: int  # bytes of ciphertext expected (the plan's estimate)
    part_size: int
    resumed: bool


@dataclass(frozen=True)
class StagingProgress:
    run_id: int
    spooled: int  # bytes of ciphertext written to the spool so far


@dataclass(frozen=True)
class StagingDone:
    run_id: int
    size: int  # the archive's final size
    part_count: int


@dataclass(frozen=True)
class PartUploading:
    run_id: int
    number: int
    size: int


@dataclass(frozen=True)
class PartUploaded:
    run_id: int
    number: int
    size: int


@dataclass(frozen=True)
class AlreadyUploaded:
    """Bytes the server already had when a run resumed: counted as done."""

    run_id: int
    size: int
    part_count: int


@dataclass(frozen=True)
class Retrying:
    run_id: int | None
    operation: str
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True)
class Message:
    level: Level
    text: str
    run_id: int | None = None


@dataclass(frozen=True)
class RunFinished:
    run_id: int
    #: "done", "resumable" (stopped, state saved), "failed", "skipped"
    outcome: str
    archive_id: str | None = None
    size: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class TaskProgress:
    """Work outside an upload run: waiting for a retrieval, downloading, decrypting.

    ``label`` is a short bar name ("wait", "download", "decrypt"), ``text`` says
    what for (shown beside the bar); ``total`` is ``None`` when unknown.
    """

    label: str
    text: str
    done: int
    total: int | None
    unit: Literal["bytes", "seconds"] = "bytes"
    finished: bool = False


Event = (
    RunStarted
    | StagingProgress
    | StagingDone
    | PartUploading
    | PartUploaded
    | AlreadyUploaded
    | Retrying
    | Message
    | RunFinished
    | TaskProgress
)


class Reporter(Protocol):
    """Renders events. Thread-safe; never raises into the engine."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None:
        """Finish drawing (stop live displays); called once at the end."""
        ...


class NullReporter:
    """Says nothing; for tests and library use."""

    def emit(self, event: Event) -> None:
        return None

    def close(self) -> None:
        return None


class RecordingReporter:
    """Keeps every event; for tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        return None
