"""The run lock: at most one aglacier process writes a state folder at a time.

``flock`` on ``STATE_DIR/lock``: the kernel drops the lock when the holder
exits or dies (even by ``kill -9``), so a crash never leaves a stale lock to
clean up. The file holds the holder's pid and command line, only to tell the
next process who is in the way. The file is never deleted: removing a lock
file while another process waits on its inode lets two holders coexist.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from pathlib import Path
from types import TracebackType

from aglacier.errors import AglacierError, StateLockedError

from .files import FILE_MODE, ensure_private_dir

LOCK_FILE_NAME = "lock"
_MAX_COMMAND = 500  # characters of the command line kept in the lock file


class RunLock:
    """An exclusive, non-blocking lock on a state folder, as a sync context manager.

    Take it before starting the event loop and before opening the store for
    writing. A second ``RunLock`` on the same folder, in this process or any
    other, raises :class:`~aglacier.errors.StateLockedError` naming the holder.
    """

    def __init__(self, state_dir: Path, *, command: str | None = None) -> None:
        self._state_dir = state_dir
        self._path = state_dir / LOCK_FILE_NAME
        self._command = command if command is not None else _own_command()
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateLockedError` at once (never waits)."""
        if self._fd is not None:
            raise RuntimeError(f"{self._path} is already held by this RunLock")
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            ensure_private_dir(self._state_dir)
            fd = os.open(self._path, flags, FILE_MODE)
        except OSError as exc:
            raise AglacierError(
                f"cannot create the lock file {self._path}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLockedError(
                f"another aglacier ({holder}) is using {self._state_dir}; wait for it or stop it",
                hint="The lock is released as soon as that process ends.",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _write_holder(fd, self._command)

    def release(self) -> None:
        """Let the lock go (closing the file releases the flock)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # a later reader should not name a finished process
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _own_command() -> str:
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "aglacier", *sys.argv[1:]]
    return shlex.join(argv)


def _write_holder(fd: int, command: str) -> None:
    line = command.replace("\n", " ")[:_MAX_COMMAND]  # the file holds one line per field
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{line}\n".encode(), 0)


def _read_holder(fd: int) -> str:
    """``pid 1234, `aglacier backup …``` from the lock file, as far as it says."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        text = ""
    pid, _, rest = text.partition("\n")
    command = rest.strip()
    if not pid.strip().isdigit():
        # The holder took the lock but has not written its pid yet.
        return "a process that has just started"
    return f"pid {pid.strip()}, `{command}`" if command else f"pid {pid.strip()}"
