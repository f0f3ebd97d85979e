"""Run engine work under the state lock, with a clean first Ctrl-C and a hard second one.

The first SIGINT (or SIGTERM) cancels the work: no new part starts, state
writes in flight finish (they are shielded), and the command exits with the
"resumable" code, saying how to resume. A second SIGINT exits at once with
130; SQLite's atomic commit means even that cannot tear a database write.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
from anyio import CancelScope

from aglacier.backends.base import Backend
from aglacier.backends.factory import open_backend
from aglacier.cli.common import Context, err_console_print
from aglacier.cli.options import config_from_context
from aglacier.cli.resources import reporter_for, run_lock, state_file
from aglacier.config import Config, DestinationConfig
from aglacier.destination import StorageClass, parse_location
from aglacier.engine.context import Engine
from aglacier.errors import ExitCode, ResumableError, primary_error
from aglacier.progress.events import Reporter, Retrying
from aglacier.staging import resolve_encryption
from aglacier.state import LogLevel, StateStore

Work = Callable[["Session"], Awaitable[ExitCode]]

#: A flaky network can retry thousands of times; the log keeps the first ones.
MAX_LOGGED_RETRIES = 50


class Session:
    """What a command's async body gets: config, state, reporter, and engines on demand."""

    def __init__(self, ctx: Context, config: Config, store: StateStore, reporter: Reporter) -> None:
        self.ctx = ctx
        self.config = config
        self.store = store
        self.reporter = reporter
        #: Retries seen by the retry layer, written to the run log at the end.
        self.retries: list[Retrying] = []

    @asynccontextmanager
    async def engine(
        self, destination: str | None = None, *, storage_class: str | None = None
    ) -> AsyncIterator[Engine]:
        """An engine for the configured destination, or ``destination`` (a run's URL).

        ``storage_class`` (a run's own) wins over the configured one, so that a
        resumed run's new upload lands in the class its catalog entry will say.
        """
        dest = self._destination(destination)
        if storage_class is not None:
            dest = replace(dest, storage_class=StorageClass(storage_class))
        config = replace(self.config, destination=dest)
        async with open_backend(
            dest, concurrency=config.upload.concurrency, on_retry=self._on_retry
        ) as backend:
            yield Engine(
                config=config,
                store=self.store,
                backend=backend,
                reporter=self.reporter,
                encryption_factory=lambda: resolve_encryption(config.encryption, self.ctx.env),
            )

    @asynccontextmanager
    async def backend(self, destination: str | None = None) -> AsyncIterator[Backend]:
        dest = self._destination(destination)
        async with open_backend(dest, concurrency=self.config.upload.concurrency) as backend:
            yield backend

    def _destination(self, url: str | None) -> DestinationConfig:
        configured = self.config.destination
        if url is None or url == str(configured.url):
            return configured
        return replace(configured, url=parse_location(url))

    def _on_retry(self, operation: str, attempt: int, error: Exception, delay: float) -> None:
        event = Retrying(None, operation, attempt, str(error), delay)
        self.retries.append(event)
        self.reporter.emit(event)

    async def write_log(self, failure: BaseException | None) -> None:
        """Record the retries and (if any) the error that ended the command."""
        with anyio.CancelScope(shield=True):
            for retry in self.retries[:MAX_LOGGED_RETRIES]:
                await self.store.log(
                    LogLevel.WARNING,
                    "request.retry",
                    f"{retry.operation}: attempt {retry.attempt} failed ({retry.error}); "
                    f"retrying in {retry.delay:.1f} s",
                )
            if len(self.retries) > MAX_LOGGED_RETRIES:
                await self.store.log(
                    LogLevel.WARNING,
                    "request.retry",
                    f"{len(self.retries) - MAX_LOGGED_RETRIES} more retries not listed",
                )
            if failure is not None:
                error = primary_error(failure)
                await self.store.log(
                    LogLevel.ERROR,
                    "command.failed",
                    f"{shlex.join(['aglacier', *sys.argv[1:]])}: {error}",
                    detail={"error": type(error).__name__},
                )


def run_locked(ctx: Context, work: Work) -> ExitCode:
    """Take the state lock, open the state, run ``work`` with signal handling."""
    config = config_from_context(ctx)
    with run_lock(ctx):
        return anyio.run(_main, ctx, config, work, backend="asyncio")


async def _main(ctx: Context, config: Config, work: Work) -> ExitCode:
    reporter = reporter_for(ctx)
    try:
        async with StateStore.open(state_file(ctx)) as store:
            session = Session(ctx, config, store, reporter)
            try:
                result = await _with_signals(session, work)
            except BaseException as exc:
                await session.write_log(exc)
                raise
            await session.write_log(None)
            return result
    finally:
        reporter.close()


async def _with_signals(session: Session, work: Work) -> ExitCode:
    interrupted = False
    result = ExitCode.ERROR
    async with anyio.create_task_group() as group:
        work_scope = anyio.CancelScope()

        async def watch() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    if interrupted:
                        err_console_print("aglacier: stopped at once")
                        sys.stderr.flush()
                        os._exit(int(ExitCode.INTERRUPTED))
                    interrupted = True
                    err_console_print(
                        "aglacier: stopping after the current state writes "
                        "(press Ctrl-C again to stop at once)"
                    )
                    work_scope.cancel()

        group.start_soon(watch)
        result = await _run_work(work_scope, session, work, lambda: interrupted)
        group.cancel_scope.cancel()
    return result


async def _run_work(
    scope: CancelScope, session: Session, work: Work, interrupted: Callable[[], bool]
) -> ExitCode:
    try:
        with scope:
            return await work(session)
    except Exception:
        if not interrupted():
            raise
    # Cancelled by a signal (or failed because of it: gpg and tar get the
    # terminal's SIGINT too): everything acknowledged is recorded.
    raise ResumableError("interrupted", hint="run `aglacier resume` to finish")
