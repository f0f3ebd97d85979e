"""Fault knobs and request counters, shared by the server's event loop and test threads.

Everything here is guarded by one ``threading.Condition`` because tests set faults from their
own thread while the server reads them on its loop; the only awaiting is the part-upload hold,
which parks an asyncio future that ``release`` resolves thread-safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from .errors import ERROR_STATUS

# Operation names, as in botocore's glacier model; they key counters and faults.
OPERATIONS = frozenset(
    {
        "CreateVault",
        "DescribeVault",
        "ListVaults",
        "DeleteVault",
        "InitiateMultipartUpload",
        "UploadMultipartPart",
        "ListParts",
        "ListMultipartUploads",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "UploadArchive",
        "DeleteArchive",
        "InitiateJob",
        "DescribeJob",
        "ListJobs",
        "GetJobOutput",
    }
)

DropStage = Literal["request", "response"]


@dataclass(frozen=True)
class CounterSnapshot:
    """Counts since start or the last reset.

    ``requests``: requests per operation name (every arrival, failed or not).
    ``part_uploads``: UploadMultipartPart arrivals per (upload id, "first-last" byte range).
    ``parts_stored``: parts accepted and stored, keyed the same way.
    ``held``: part uploads parked by ``hold_parts_after`` right now.
    """

    requests: dict[str, int]
    part_uploads: dict[tuple[str, str], int]
    parts_stored: dict[tuple[str, str], int]
    held: int

    def to_json(self) -> dict[str, object]:
        """The form ``GET /_emulator/counters`` returns."""
        return {
            "requests": self.requests,
            "part_uploads": _nest(self.part_uploads),
            "parts_stored": _nest(self.parts_stored),
            "held": self.held,
        }


def _nest(flat: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (upload_id, byte_range), count in flat.items():
        nested.setdefault(upload_id, {})[byte_range] = count
    return nested


@dataclass
class _Knobs:
    errors: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    drops: dict[tuple[str, DropStage], int] = field(default_factory=dict)
    latency: float = 0.0
    hold_after: int | None = None
    passed: int = 0
    held_responses: set[str] = field(default_factory=set)


class Faults:
    """Thread-safe fault settings and counters of one emulator."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._knobs = _Knobs()
        self._waiters: list[asyncio.Future[bool]] = []
        self._requests: Counter[str] = Counter()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._stored: Counter[tuple[str, str]] = Counter()

    # -- settings (any thread) ------------------------------------------------------------

    def inject_error(
        self, operation: str, code: str = "ServiceUnavailableException", count: int = 1
    ) -> None:
        """Answer the next ``count`` requests of ``operation`` with error ``code``.

        Queued behind errors already pending for that operation. The request has no effect.
        """
        _check_operation(operation)
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code!r}; known: {sorted(ERROR_STATUS)}")
        _check_count(count)
        with self._cond:
            self._knobs.errors.setdefault(operation, []).append((code, count))

    def drop_connection(
        self, operation: str = "UploadMultipartPart", count: int = 1, stage: DropStage = "request"
    ) -> None:
        """Close the connection without an answer on the next ``count`` ``operation`` requests.

        ``stage="request"``: after reading half the request body (so nothing is stored);
        ``stage="response"``: after the operation took effect, instead of its response.
        """
        _check_operation(operation)
        _check_count(count)
        if stage not in ("request", "response"):
            raise ValueError(f"stage must be 'request' or 'response', not {stage!r}")
        with self._cond:
            key = (operation, stage)
            self._knobs.drops[key] = self._knobs.drops.get(key, 0) + count

    def set_latency(self, seconds: float) -> None:
        """Delay every API request (not admin ones) by ``seconds`` before handling it."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._cond:
            self._knobs.latency = seconds

    def hold_parts_after(self, parts: int) -> None:
        """Let ``parts`` more part uploads through, then park the rest until ``release``."""
        _check_count(parts, minimum=0)
        with self._cond:
            self._knobs.hold_after = parts
            self._knobs.passed = 0

    def hold_responses(self, operation: str) -> None:
        """Park the answer to every ``operation`` after it took effect, until ``release``.

        A client killed while its answer is parked has changed the server without
        knowing it: the crash between "complete" and recording the archive.
        """
        _check_operation(operation)
        with self._cond:
            self._knobs.held_responses.add(operation)

    def release(self, *, drop: bool = False) -> None:
        """Stop holding part uploads and let every parked one proceed.

        With ``drop=True`` the parked ones are not processed: their connections are closed
        unanswered and nothing is stored (a client killed while held may otherwise have
        left its whole body in the socket buffers, and the part would still be stored).
        """
        with self._cond:
            self._knobs.hold_after = None
            self._knobs.held_responses.clear()
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter, drop)

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block the calling thread until ``count`` part uploads or answers are parked.

        Raises ``TimeoutError`` if that does not happen within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._waiters) >= count, timeout):
                raise TimeoutError(f"{len(self._waiters)} of {count} part uploads held")

    def reset(self) -> None:
        """Clear every fault and counter, releasing parked uploads."""
        self.release()
        with self._cond:
            self._knobs = _Knobs()
            self._requests.clear()
            self._attempts.clear()
            self._stored.clear()

    def counters(self) -> CounterSnapshot:
        """A consistent copy of the counters."""
        with self._cond:
            return CounterSnapshot(
                requests=dict(self._requests),
                part_uploads=dict(self._attempts),
                parts_stored=dict(self._stored),
                held=len(self._waiters),
            )

    # -- server side (event loop) ---------------------------------------------------------

    @property
    def latency(self) -> float:
        """Current per-request latency in seconds."""
        with self._cond:
            return self._knobs.latency

    def count_request(self, operation: str) -> None:
        """Record one arrival of ``operation``."""
        with self._cond:
            self._requests[operation] += 1

    def count_part(self, upload_id: str, byte_range: str, *, stored: bool) -> None:
        """Record a part upload attempt, or a stored part when ``stored``."""
        with self._cond:
            (self._stored if stored else self._attempts)[(upload_id, byte_range)] += 1

    def take_error(self, operation: str) -> str | None:
        """Consume one injected error for ``operation``, if any is pending."""
        with self._cond:
            queue = self._knobs.errors.get(operation)
            if not queue:
                return None
            code, left = queue[0]
            if left > 1:
                queue[0] = (code, left - 1)
            else:
                queue.pop(0)
            return code

    def take_drop(self, operation: str, stage: DropStage) -> bool:
        """Consume one pending connection drop for ``operation`` at ``stage``."""
        with self._cond:
            key = (operation, stage)
            left = self._knobs.drops.get(key, 0)
            if left:
                self._knobs.drops[key] = left - 1
            return left > 0

    async def gate_part(self) -> bool:
        """Return at once, or park this part upload while holding is on.

        Returns True when the upload must be dropped rather than processed.
        """
        with self._cond:
            knobs = self._knobs
            if knobs.hold_after is None or knobs.passed < knobs.hold_after:
                knobs.passed += 1
                return False
            waiter = self._park()
        return await self._wait(waiter)

    async def gate_response(self, operation: str) -> bool:
        """Return at once, or park the answer to ``operation`` while it is held.

        Returns True when the connection must be dropped rather than answered.
        """
        with self._cond:
            if operation not in self._knobs.held_responses:
                return False
            waiter = self._park()
        return await self._wait(waiter)

    def _park(self) -> asyncio.Future[bool]:
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._cond.notify_all()
        return waiter

    async def _wait(self, waiter: asyncio.Future[bool]) -> bool:
        try:
            return await waiter
        finally:
            with self._cond:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)


def _resolve(waiter: asyncio.Future[bool], drop: bool) -> None:
    if not waiter.done():
        waiter.set_result(drop)


def _check_operation(operation: str) -> None:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; known: {sorted(OPERATIONS)}")


def _check_count(count: int, minimum: int = 1) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < minimum:
        raise ValueError(f"count must be an integer >= {minimum}, not {count!r}")
