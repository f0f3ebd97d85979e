"""The local state: what was uploaded, what is in flight, what to resume.

``RunLock`` keeps a state folder to one writing process; ``StateStore`` is
the SQLite database inside it. The schema is described in
``docs/state-schema.md``.
"""

from .lock import LOCK_FILE_NAME, RunLock
from .records import (
    Archive,
    JsonObject,
    LogEntry,
    LogLevel,
    Part,
    RecordNotFoundError,
    Retrieval,
    RetrievalKind,
    RetrievalState,
    Run,
    RunState,
    StateConflictError,
)
from .schema import APPLICATION_ID, MIGRATIONS, Migration
from .store import StateStore

#: The database file's name inside a state folder.
STATE_FILE_NAME = "state.sqlite3"

__all__ = [
    "APPLICATION_ID",
    "LOCK_FILE_NAME",
    "MIGRATIONS",
    "STATE_FILE_NAME",
    "Archive",
    "JsonObject",
    "LogEntry",
    "LogLevel",
    "Migration",
    "Part",
    "RecordNotFoundError",
    "Retrieval",
    "RetrievalKind",
    "RetrievalState",
    "Run",
    "RunLock",
    "RunState",
    "StateConflictError",
    "StateStore",
]
