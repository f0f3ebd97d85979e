"""The retry wrapper around a real backend (a local folder), with scripted failures."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    Backend,
    CompletePart,
    PartChecksums,
    PartData,
    PendingUpload,
    Retrieval,
    StoredArchive,
    Tier,
    Upload,
    UploadedPart,
)
from aglacier.backends.limits import BackendLimits
from aglacier.backends.local import LocalBackend
from aglacier.backends.retry import RetryingBackend
from aglacier.errors import (
    AccessDeniedError,
    BackendError,
    ChecksumRejectedError,
    CompletionUnknownError,
    ExitCode,
    TransientBackendError,
    UploadNotFoundError,
)
from aglacier.units import MiB
from tests.backends.conftest import Spooled, archive_info, random_bytes, spool, upload_parts

pytestmark = pytest.mark.anyio

T = TypeVar("T")


@dataclass
class Scripted:
    """Delegates to ``inner``; before a call, raises the errors scripted for its operation.

    A scripted error is either raised instead of the call (``before``) or after the
    call took effect (``after``: the answer was lost). It also counts calls and the
    requests in flight, to measure the retry wrapper's limiter.
    """

    inner: Backend
    connections: int = 8
    before: dict[str, list[BackendError]] = field(default_factory=dict)
    after: dict[str, list[BackendError]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    dwell: float = 0.0  # seconds each call stays in flight

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.dwell)
            if self.before.get(operation):
                raise self.before[operation].pop(0)
            result = await call()
            if self.after.get(operation):
                raise self.after[operation].pop(0)
            return result
        finally:
            self.in_flight -= 1

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def limits(self) -> BackendLimits:
        return self.inner.limits

    @property
    def max_connections(self) -> int:
        return self.connections

    async def check(self) -> None:
        await self._call("check", self.inner.check)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        return await self._call("start_upload", lambda: self.inner.start_upload(info))

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        return await self._call("upload_part", lambda: self.inner.upload_part(upload, part, body))

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        return await self._call("list_parts", lambda: self.inner.list_parts(upload))

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        return await self._call(
            "complete", lambda: self.inner.complete(upload, info, parts, totals)
        )

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        return await self._call(
            "find_completed", lambda: self.inner.find_completed(upload, info, totals)
        )

    async def abort(self, upload: Upload) -> None:
        await self._call("abort", lambda: self.inner.abort(upload))

    async def list_pending(self) -> list[PendingUpload]:
        return await self._call("list_pending", self.inner.list_pending)

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        return await self._call(
            "request_retrieval",
            lambda: self.inner.request_retrieval(archive_id, tier=tier, days=days),
        )

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        return await self._call("retrieval_status", lambda: self.inner.retrieval_status(retrieval))

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        return await self._call(
            "read_part",
            lambda: self.inner.read_part(retrieval, number, part_size, archive_size),
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Sleeps:
    """A sleep that only records how long it was asked to sleep."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.lowlevel.checkpoint()


@dataclass
class Retries:
    """Records ``on_retry`` calls."""

    seen: list[tuple[str, int, TransientBackendError, float]] = field(default_factory=list)

    def __call__(
        self, operation: str, attempt: int, error: TransientBackendError, delay: float
    ) -> None:
        self.seen.append((operation, attempt, error, delay))


@dataclass
class Rig:
    scripted: Scripted
    retrying: RetryingBackend
    sleeps: Sleeps
    retries: Retries


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    (tmp_path / "backups").mkdir()  # a configured folder must exist
    local = LocalBackend(tmp_path / "backups")
    await local.check()
    scripted = Scripted(local)
    sleeps, retries = Sleeps(), Retries()
    retrying = RetryingBackend(
        scripted,
        attempts=4,
        base_delay=0.5,
        max_delay=3.0,
        on_retry=retries,
        sleep=sleeps,
        random=lambda: 0.5,
    )
    return Rig(scripted, retrying, sleeps, retries)


def _transient(n: int) -> list[BackendError]:
    return [TransientBackendError(f"throttled #{i}") for i in range(n)]


def _spooled(size: int = 2 * MiB + 3) -> Spooled:
    return spool(random_bytes(size), MiB)


async def _staged(backend: Backend, spooled: Spooled) -> tuple[Upload, list[CompletePart]]:
    upload = await backend.start_upload(archive_info(MiB))
    uploaded = await upload_parts(backend, upload, spooled)
    return upload, spooled.complete_parts(uploaded)


# --- which errors are retried ---------------------------------------------------------


async def test_the_wrapper_is_a_backend(rig: Rig) -> None:
    assert isinstance(rig.retrying, Backend)
    assert rig.retrying.url == rig.scripted.url
    assert rig.retrying.limits == rig.scripted.limits
    assert rig.retrying.max_connections == rig.scripted.max_connections


async def test_transient_errors_are_retried_until_success(rig: Rig) -> None:
    spooled = _spooled()
    upload = await rig.retrying.start_upload(archive_info(MiB))
    errors = _transient(2)
    rig.scripted.before["upload_part"] = list(errors)

    part = await rig.retrying.upload_part(upload, spooled.parts[0], spooled.body(0))

    assert part.number == 0
    assert rig.scripted.calls["upload_part"] == 3
    assert [(op, n, e) for op, n, e, _ in rig.retries.seen] == [
        ("upload_part 0", 1, errors[0]),
        ("upload_part 0", 2, errors[1]),
    ]
    assert rig.sleeps.delays == [0.25, 0.5]  # random 0.5 × 0.5 s × 2^(n-1)
    assert [d for *_, d in rig.retries.seen] == rig.sleeps.delays


async def test_permanent_errors_are_not_retried(rig: Rig) -> None:
    spooled = _spooled()
    upload = await rig.retrying.start_upload(archive_info(MiB))
    wrong = spooled.parts[1]

    with pytest.raises(ChecksumRejectedError):  # raised by the local folder itself
        await rig.retrying.upload_part(upload, wrong, spooled.body(0))

    assert rig.scripted.calls["upload_part"] == 1
    assert rig.sleeps.delays == []
    assert rig.retries.seen == []


async def test_upload_not_found_is_not_retried(rig: Rig) -> None:
    with pytest.raises(UploadNotFoundError):
        await rig.retrying.list_parts(Upload("x" * 24, None))
    assert rig.scripted.calls["list_parts"] == 1


async def test_the_last_transient_error_propagates_when_attempts_run_out(rig: Rig) -> None:
    errors = _transient(10)
    rig.scripted.before["list_pending"] = list(errors)

    with pytest.raises(TransientBackendError) as raised:
        await rig.retrying.list_pending()

    assert raised.value is errors[3]
    assert rig.scripted.calls["list_pending"] == 4
    assert len(rig.sleeps.delays) == 3  # no sleep after the last attempt


def test_backoff_is_exponential_with_full_jitter_under_a_cap(tmp_path: Path) -> None:
    fractions = iter([0.0, 0.999, 0.999, 0.999, 0.999, 0.5, 0.999])
    wrapper = RetryingBackend(
        LocalBackend(tmp_path), base_delay=1.0, max_delay=5.0, random=lambda: next(fractions)
    )
    delays = [wrapper.delay(n) for n in range(1, 7)]
    assert delays == pytest.approx([0.0, 1.998, 3.996, 4.995, 4.995, 2.5])
    assert wrapper.delay(10_000) <= 5.0  # no overflow however long the run


def test_default_jitter_stays_within_the_ceiling(tmp_path: Path) -> None:
    wrapper = RetryingBackend(LocalBackend(tmp_path), base_delay=1.0, max_delay=8.0)
    delays = [wrapper.delay(n) for n in itertools.chain.from_iterable([range(1, 8)] * 50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"base_delay": -1.0}, {"base_delay": 2.0, "max_delay": 1.0}]
)
def test_nonsense_settings_are_refused(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryingBackend(LocalBackend(tmp_path), **kwargs)  # type: ignore[arg-type]


# --- the connection limit --------------------------------------------------------------


async def test_no_more_requests_in_flight_than_the_destination_allows(rig: Rig) -> None:
    rig.scripted.connections = 3
    rig.scripted.dwell = 0.01
    retrying = RetryingBackend(rig.scripted, sleep=rig.sleeps)
    spooled = _spooled(12 * MiB)
    upload = await retrying.start_upload(archive_info(MiB))

    await upload_parts(retrying, upload, spooled, concurrency=12)

    assert rig.scripted.max_in_flight == 3
    assert len(await retrying.list_parts(upload)) == 12


async def test_the_limit_is_not_held_while_sleeping(rig: Rig) -> None:
    rig.scripted.connections = 1
    rig.scripted.before["list_pending"] = _transient(1)
    other_done = anyio.Event()

    async def sleep_until_the_other_call_is_done(seconds: float) -> None:
        await other_done.wait()

    retrying = RetryingBackend(rig.scripted, sleep=sleep_until_the_other_call_is_done)
    with anyio.fail_after(5):  # holding the only token while asleep would deadlock
        async with anyio.create_task_group() as tg:
            tg.start_soon(retrying.list_pending)
            await anyio.wait_all_tasks_blocked()
            await retrying.check()
            other_done.set()


# --- requests that are not idempotent ------------------------------------------------


async def test_a_lost_complete_answer_is_settled_by_find_completed(rig: Rig) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    rig.scripted.after["complete"] = _transient(1)  # the complete worked; its answer got lost

    stored = await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)

    assert stored.archive_id == upload.key
    assert rig.scripted.calls["complete"] == 2  # the retry found the upload gone
    assert rig.scripted.calls["find_completed"] == 1
    local = rig.scripted.inner
    assert isinstance(local, LocalBackend)
    assert (local.root / stored.archive_id).read_bytes() == spooled.data


async def test_a_lost_complete_that_cannot_be_settled_is_resumable(rig: Rig) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    rig.scripted.after["complete"] = _transient(1)
    rig.scripted.before["find_completed"] = [CompletionUnknownError("a vault cannot tell")]

    with pytest.raises(CompletionUnknownError, match="a vault cannot tell") as caught:
        await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)
    assert caught.value.exit_code is ExitCode.RESUMABLE
    assert rig.scripted.calls["find_completed"] == 1  # "cannot tell" is not retried


async def test_a_lost_complete_whose_lookup_keeps_failing_is_completion_unknown(
    rig: Rig,
) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    rig.scripted.after["complete"] = _transient(1)
    rig.scripted.before["find_completed"] = _transient(rig.retrying.attempts)

    with pytest.raises(CompletionUnknownError) as caught:
        await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)
    assert isinstance(caught.value.__cause__, TransientBackendError)
    assert rig.scripted.calls["find_completed"] == rig.retrying.attempts


async def test_a_permanent_error_of_the_lookup_propagates_as_it_is(rig: Rig) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    rig.scripted.after["complete"] = _transient(1)
    rig.scripted.before["find_completed"] = [AccessDeniedError("no s3:GetObject")]

    with pytest.raises(AccessDeniedError):
        await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)


async def test_a_complete_whose_upload_vanished_is_upload_not_found(rig: Rig) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    rig.scripted.before["complete"] = _transient(1)
    await rig.scripted.inner.abort(upload)  # expired on the server meanwhile

    with pytest.raises(UploadNotFoundError):
        await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)
    assert rig.scripted.calls["find_completed"] == 1


async def test_a_complete_of_an_unknown_upload_does_not_look_further(rig: Rig) -> None:
    spooled = _spooled()
    upload, parts = await _staged(rig.retrying, spooled)
    await rig.scripted.inner.abort(upload)

    with pytest.raises(UploadNotFoundError):
        await rig.retrying.complete(upload, archive_info(MiB), parts, spooled.totals)
    assert "find_completed" not in rig.scripted.calls


async def test_a_lost_abort_answer_counts_as_done(rig: Rig) -> None:
    upload = await rig.retrying.start_upload(archive_info(MiB))
    rig.scripted.after["abort"] = _transient(1)

    await rig.retrying.abort(upload)

    assert rig.scripted.calls["abort"] == 2
    assert await rig.retrying.list_pending() == []


async def test_aborting_an_unknown_upload_is_upload_not_found(rig: Rig) -> None:
    with pytest.raises(UploadNotFoundError):
        await rig.retrying.abort(Upload("y" * 24, None))
