"""What one engine invocation works with: the state, the backend, the reporter, the plan inputs."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio

from aglacier import __version__
from aglacier.backends.base import ArchiveInfo, Backend
from aglacier.config import Config
from aglacier.errors import AglacierError, TransientBackendError
from aglacier.progress.events import Message, Reporter
from aglacier.staging import Encryption
from aglacier.state import LogLevel, Run, StateStore

T = TypeVar("T")


@dataclass
class Engine:
    """The resources a backup or resume uses; built once per command."""

    config: Config
    store: StateStore
    backend: Backend
    reporter: Reporter
    #: Resolved lazily: resume of a staged run needs no gpg key.
    encryption_factory: Callable[[], Encryption]
    host: str = field(default_factory=socket.gethostname)
    version: str = __version__
    _encryption: Encryption | None = None
    _checked: bool = False

    @property
    def destination(self) -> str:
        return str(self.config.destination.url)

    @property
    def concurrency(self) -> int:
        return self.config.upload.concurrency

    @property
    def spool_dir(self) -> Path:
        return self.config.backup.spool_dir

    async def encryption(self) -> Encryption:
        """The checked gpg setup (``gpg --list-keys`` runs in a worker thread, once)."""
        if self._encryption is None:
            self._encryption = await anyio.to_thread.run_sync(self.encryption_factory)
        return self._encryption

    async def check_destination(self) -> None:
        """Fail fast on a missing vault or bucket or bad credentials (once per engine)."""
        if not self._checked:
            try:
                await self.backend.check()
            except TransientBackendError as exc:
                raise AglacierError(
                    f"cannot reach {self.destination}: {exc}",
                    hint="check the network and endpoint_url; nothing was sent",
                ) from exc
            self._checked = True

    def archive_info(self, run: Run) -> ArchiveInfo:
        return ArchiveInfo(
            source=str(run.source),
            host=run.host,
            created_at=run.created_at,
            part_size=run.part_size,
            aglacier_version=self.version,
        )

    async def log(
        self,
        level: LogLevel,
        event: str,
        message: str,
        *,
        run_id: int | None = None,
        detail: dict[str, object] | None = None,
        show: bool = True,
    ) -> None:
        """Record a line in the run log (never torn by Ctrl-C) and show it."""
        if show:
            self.reporter.emit(Message(level=level.value, text=message, run_id=run_id))
        await shielded(self.store.log, level, event, message, run_id=run_id, detail=detail)


async def shielded(func: Callable[..., Awaitable[T]], *args: object, **kwargs: object) -> T:
    """Run a state write so that cancellation (Ctrl-C) cannot interrupt it."""
    with anyio.CancelScope(shield=True):
        result = await func(*args, **kwargs)
    return result


def utcnow() -> datetime:
    return datetime.now(UTC)
