"""A stream wrapper that turns write failures into silence.

A reporter must never raise into the engine: a closed terminal, a pipe to
``head`` that went away or a full disk under a log file must not stop a
backup. Rich in particular reacts to ``BrokenPipeError`` by pointing stdout
at ``/dev/null`` and raising ``SystemExit``, and its refresh thread dies
noisily on a closed file; behind this wrapper it sees neither.
"""

from __future__ import annotations

from typing import IO


class GuardedStream:
    """Writes to ``target`` until the first failure, then drops everything."""

    def __init__(self, target: IO[str]) -> None:
        self._target = target
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._target.write(text)
            except (OSError, ValueError):  # ValueError: "I/O operation on closed file"
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._target.flush()
            except (OSError, ValueError):
                self.broken = True

    def isatty(self) -> bool:
        try:
            return self._target.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", None) or "utf-8"
