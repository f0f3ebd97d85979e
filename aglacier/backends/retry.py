"""The one layer that retries, and the one that bounds requests in flight.

:class:`RetryingBackend` wraps any :class:`~aglacier.backends.base.Backend`
(restic's ``internal/backend/retry`` and ``sema`` in one wrapper):

* Only :class:`~aglacier.errors.TransientBackendError` is retried, with
  exponential backoff and full jitter: before attempt ``n + 1`` it sleeps a
  uniformly random time in ``[0, min(max_delay, base_delay × 2^(n-1))]``, which
  spreads the retries of many parallel part uploads instead of synchronising them.
  A permanent error propagates at once.
* When the attempts are used up, the last transient error propagates. The
  engine then saves its state and exits with the "resumable" code; nothing here
  ever aborts an upload.
* A :class:`anyio.CapacityLimiter` of ``inner.max_connections`` tokens is held
  during each attempt (not during the sleeps), so no more requests are in flight
  than the destination allows.

``complete`` and ``abort`` are not idempotent on every service: when a retry of
either finds the upload gone after an attempt failed transiently, the first
attempt may have taken effect. For ``abort`` that is success. For ``complete``
:meth:`Backend.find_completed` decides: the archive when it is there,
:class:`~aglacier.errors.UploadNotFoundError` when it certainly is not, and
:class:`~aglacier.errors.CompletionUnknownError` (resumable) when the service
cannot tell or ``find_completed`` itself keeps failing transiently, so that the
engine's crash-recovery path settles it. Other errors of ``find_completed``
(access denied, a missing destination) propagate as they are.

``start_upload``, ``request_retrieval`` and ``request_inventory`` are retried
like the rest: a request whose answer was lost may leave an unused upload
(``list-pending`` shows it) or a duplicate retrieval job; both are cheaper than
failing the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from random import random as _random_fraction
from typing import Protocol, TypeVar

import anyio

from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    Backend,
    CompletePart,
    Inventory,
    InventoryJob,
    ListingBackend,
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
from aglacier.errors import (
    CompletionUnknownError,
    InvalidRequestError,
    TransientBackendError,
    UploadNotFoundError,
)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8
DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 60.0


class RetryCallback(Protocol):
    """Told about each retry before its sleep, e.g. to log it."""

    def __call__(
        self, operation: str, attempt: int, error: TransientBackendError, delay: float
    ) -> None:
        """``attempt`` is the 1-based number of the attempt that failed."""


class RetryingBackend:
    """A :class:`Backend` that retries transient errors of ``inner`` and limits concurrency.

    With the defaults a request is tried 8 times over about a minute (the expected
    sum of the jittered sleeps), long enough to ride out throttling. ``sleep`` and
    ``random`` (a source of floats in ``[0, 1)``) are injectable so that tests
    run without waiting and deterministically.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        on_retry: RetryCallback | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _random_fraction,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= base_delay <= max_delay:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay")
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._on_retry = on_retry
        self._sleep = sleep
        self._random = random
        self._limiter = anyio.CapacityLimiter(inner.max_connections)

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def limits(self) -> BackendLimits:
        return self.inner.limits

    @property
    def max_connections(self) -> int:
        return self.inner.max_connections

    def delay(self, attempt: int) -> float:
        """The sleep after failed attempt ``attempt`` (1-based): full jitter under a cap."""
        # The exponent is capped so that a long run of attempts cannot overflow a float.
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64))
        return self._random() * ceiling

    async def check(self) -> None:
        await self._retry("check", self.inner.check)

    async def start_upload(self, info: ArchiveInfo) -> Upload:
        return await self._retry("start_upload", partial(self.inner.start_upload, info))

    async def upload_part(self, upload: Upload, part: PartChecksums, body: bytes) -> UploadedPart:
        call = partial(self.inner.upload_part, upload, part, body)
        return await self._retry(f"upload_part {part.number}", call)

    async def list_parts(self, upload: Upload) -> list[UploadedPart]:
        return await self._retry("list_parts", partial(self.inner.list_parts, upload))

    async def complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        parts: Sequence[CompletePart],
        totals: ArchiveTotals,
    ) -> StoredArchive:
        """Complete; a lost answer to an earlier attempt is settled by ``find_completed``."""
        failed: list[TransientBackendError] = []
        call = partial(self.inner.complete, upload, info, parts, totals)
        try:
            return await self._retry("complete", call, failed)
        except UploadNotFoundError:
            if not failed:
                raise
            return await self._settle_complete(upload, info, totals, failed[-1])

    async def find_completed(
        self, upload: Upload, info: ArchiveInfo, totals: ArchiveTotals
    ) -> StoredArchive | None:
        call = partial(self.inner.find_completed, upload, info, totals)
        return await self._retry("find_completed", call)

    async def abort(self, upload: Upload) -> None:
        """Abort; gone after an earlier attempt failed means that attempt worked."""
        failed: list[TransientBackendError] = []
        try:
            await self._retry("abort", partial(self.inner.abort, upload), failed)
        except UploadNotFoundError:
            if not failed:
                raise

    async def list_pending(self) -> list[PendingUpload]:
        return await self._retry("list_pending", self.inner.list_pending)

    async def request_retrieval(self, archive_id: str, *, tier: Tier, days: int) -> Retrieval:
        call = partial(self.inner.request_retrieval, archive_id, tier=tier, days=days)
        return await self._retry("request_retrieval", call)

    async def retrieval_status(self, retrieval: Retrieval) -> Retrieval:
        return await self._retry(
            "retrieval_status", partial(self.inner.retrieval_status, retrieval)
        )

    async def read_part(
        self, retrieval: Retrieval, number: int, part_size: int, archive_size: int
    ) -> PartData:
        call = partial(self.inner.read_part, retrieval, number, part_size, archive_size)
        return await self._retry(f"read_part {number}", call)

    async def request_inventory(self) -> InventoryJob:
        """Retried like ``request_retrieval``: a lost answer may leave a spare vault job."""
        return await self._retry("request_inventory", self._lister().request_inventory)

    async def inventory_status(self, job: InventoryJob) -> InventoryJob:
        return await self._retry("inventory_status", partial(self._lister().inventory_status, job))

    async def read_inventory(self, job: InventoryJob) -> Inventory:
        """Retried as a whole (it only reads), holding one connection token."""
        return await self._retry("read_inventory", partial(self._lister().read_inventory, job))

    def _lister(self) -> ListingBackend:
        if not isinstance(self.inner, ListingBackend):
            raise InvalidRequestError(f"{self.url} cannot list its archives")
        return self.inner

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _retry(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        failed: list[TransientBackendError] | None = None,
    ) -> T:
        """Run ``call`` until it succeeds, fails permanently, or the attempts run out.

        Transient errors are appended to ``failed`` for callers that must know
        whether an earlier attempt may have reached the server.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._limiter:
                    return await call()
            except TransientBackendError as error:
                if failed is not None:
                    failed.append(error)
                if attempt == self.attempts:
                    raise
                delay = self.delay(attempt)
                if self._on_retry is not None:
                    self._on_retry(operation, attempt, error, delay)
                await self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _settle_complete(
        self,
        upload: Upload,
        info: ArchiveInfo,
        totals: ArchiveTotals,
        lost: TransientBackendError,
    ) -> StoredArchive:
        """A retried complete found the upload gone: did the lost attempt finish it?"""
        try:
            found = await self.find_completed(upload, info, totals)
        except (CompletionUnknownError, TransientBackendError) as cannot_tell:
            raise CompletionUnknownError(
                f"the destination did not answer a complete and cannot tell whether it "
                f"took effect ({lost}; {cannot_tell})",
                hint="run `aglacier resume`, which settles it",
            ) from cannot_tell
        if found is None:
            raise UploadNotFoundError(
                f"upload {upload.upload_id} is gone and its archive is not there"
            ) from lost
        return found
