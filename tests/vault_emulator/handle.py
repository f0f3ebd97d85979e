"""``VaultEmulator``: the emulator in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from . import admin
from .common import Context
from .faults import CounterSnapshot, Faults
from .server import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, EmulatorServer

T = TypeVar("T")


class VaultEmulator:
    """A strict Glacier vault API server on 127.0.0.1, for tests in this process.

    ``with VaultEmulator(tmp_path / "glacier") as emu:`` starts it on a free port;
    point boto3 or aiobotocore at ``emu.endpoint_url``. Faults are set with ``emu.faults``
    (see ``Faults``); counters come from ``emu.counters()``. Leaving the block releases held
    uploads, closes every connection and joins the thread. The data folder survives, so a
    new emulator on the same folder sees the same vaults, uploads and archives.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        job_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.faults = Faults()
        self.account_id = account_id
        self.region = region
        self._job_delay = job_delay
        self._host, self._port = host, port
        self._endpoint_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: EmulatorServer | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> VaultEmulator:
        """Start serving; return self once the port is open (raises if startup failed)."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        started: Future[str] = Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="vault-emulator", daemon=True
        )
        self._thread.start()
        try:
            self._endpoint_url = started.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=30)
            self._thread = None
            raise
        return self

    async def _serve(self, started: Future[str]) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._server = EmulatorServer(
                self.data_dir,
                job_delay=self._job_delay,
                faults=self.faults,
                account_id=self.account_id,
                region=self.region,
            )
            url = await self._server.start(self._host, self._port)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(url)
        try:
            await self._stop.wait()
        finally:
            await self._server.stop()

    def stop(self) -> None:
        """Shut down and join the thread; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        if thread.is_alive():
            raise RuntimeError("the vault emulator did not stop within 30 s")
        self._endpoint_url = None

    def __enter__(self) -> VaultEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts ----------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._endpoint_url is None:
            raise RuntimeError("the emulator is not running")
        return self._endpoint_url

    def archive_path(self, vault: str, archive_id: str) -> Path:
        """The plain file holding exactly a finished archive's bytes."""
        return self.data_dir / "vaults" / vault / "archives" / archive_id

    def counters(self) -> CounterSnapshot:
        """Requests per operation and uploads per (upload id, byte range)."""
        return self.faults.counters()

    # -- knobs ----------------------------------------------------------------------------

    def release(self, *, drop: bool = False) -> None:
        """Stop holding part uploads; parked ones proceed, or with ``drop`` are cut off."""
        self.faults.release(drop=drop)

    def reset(self) -> None:
        """Clear every fault and counter (stored data stays)."""
        self.faults.reset()

    def forget_upload(self, upload_id: str) -> bool:
        """Forget an upload id as if it had expired after 24 h; False if it was unknown."""
        return self._on_loop(lambda: admin.forget_upload(self._context(), upload_id))

    def set_job_delay(self, seconds: float) -> None:
        """Seconds until jobs initiated from now on turn Succeeded."""
        self._on_loop(lambda: admin.set_job_delay(self._context(), seconds))

    def complete_jobs(self) -> int:
        """Make every job in progress Succeeded now; return how many were."""
        return self._on_loop(lambda: admin.complete_jobs(self._context()))

    def _context(self) -> Context:
        assert self._server is not None
        return self._server.context

    def _on_loop(self, call: Callable[[], T]) -> T:
        # The store is only ever touched on the server's loop, so run the call there.
        if self._loop is None or self._thread is None:
            raise RuntimeError("the emulator is not running")

        async def run() -> T:
            return call()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)
