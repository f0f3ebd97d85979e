"""Typed records read from the state database, and the store's own errors.

Records are frozen snapshots: a method that changes state returns a fresh one,
an old record is never updated in place. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

#: A JSON object as stored in the ``detail`` and ``manifest`` columns.
JsonObject = dict[str, Any]


class RecordNotFoundError(LookupError):
    """No row has the id a caller passed: a bug in the caller, not a user error."""


class StateConflictError(ValueError):
    """A write contradicts what the state already records.

    Examples: a part recorded again with other hashes, a second unfinished run
    for the same source and destination, leaving a finished run.
    """


class RunState(StrEnum):
    """Where a backup run is; see ``docs/state-schema.md`` for the transitions."""

    PLANNED = "planned"
    STAGING = "staging"
    STAGED = "staged"
    COMPLETING = "completing"
    DONE = "done"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """Whether no transition leaves this state."""
        return self in _FINISHED


_FINISHED = frozenset({RunState.DONE, RunState.ABORTED, RunState.FAILED})


class RetrievalKind(StrEnum):
    """What a retrieval brings back: one archive, or a vault's inventory."""

    ARCHIVE = "archive"
    INVENTORY = "inventory"


class RetrievalState(StrEnum):
    """Where a retrieval is: requested → ready → downloading → done (or failed, expired)."""

    REQUESTED = "requested"
    READY = "ready"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def active(self) -> bool:
        """Whether the retrieval still needs attention (not done, failed or expired)."""
        return self in (RetrievalState.REQUESTED, RetrievalState.READY, RetrievalState.DOWNLOADING)


class LogLevel(StrEnum):
    """Severity of a run-log entry."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Run:
    """One backup run of ``source`` to ``destination``.

    ``upload_id`` is set only once the server acknowledged the initiate request;
    ``archive_size``, ``archive_sha256`` and ``archive_tree_hash`` only once the
    whole ciphertext is spooled (state ``staged`` and later).
    """

    id: int
    source: Path
    destination: str
    state: RunState
    upload_id: str | None
    remote_key: str | None
    part_size: int
    estimated_size: int | None
    spool_path: Path | None
    archive_size: int | None
    archive_sha256: str | None
    archive_tree_hash: str | None
    storage_class: str | None
    host: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    error: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        return cls(
            id=row["id"],
            source=Path(row["source"]),
            destination=row["destination"],
            state=RunState(row["state"]),
            upload_id=row["upload_id"],
            remote_key=row["remote_key"],
            part_size=row["part_size"],
            estimated_size=row["estimated_size"],
            spool_path=_path_or_none(row["spool_path"]),
            archive_size=row["archive_size"],
            archive_sha256=row["archive_sha256"],
            archive_tree_hash=row["archive_tree_hash"],
            storage_class=row["storage_class"],
            host=row["host"],
            created_at=parse_time(row["created_at"]),
            updated_at=parse_time(row["updated_at"]),
            finished_at=_time_or_none(row["finished_at"]),
            error=row["error"],
        )


@dataclass(frozen=True)
class Part:
    """One part of a run's spooled ciphertext; ``part_number`` counts from 0."""

    run_id: int
    part_number: int
    offset: int
    size: int
    sha256: str
    tree_hash: str
    spooled_at: datetime
    uploaded_at: datetime | None
    etag: str | None

    @property
    def uploaded(self) -> bool:
        """Whether the server acknowledged this part under the run's current upload id."""
        return self.uploaded_at is not None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Part:
        return cls(
            run_id=row["run_id"],
            part_number=row["part_number"],
            offset=row["offset"],
            size=row["size"],
            sha256=row["sha256"],
            tree_hash=row["tree_hash"],
            spooled_at=parse_time(row["spooled_at"]),
            uploaded_at=_time_or_none(row["uploaded_at"]),
            etag=row["etag"],
        )


@dataclass(frozen=True)
class Archive:
    """A finished archive in the catalog.

    ``archive_id`` is what the destination calls it: the vault's archive id, the
    S3 key, or the local file name. ``run_id`` is None for an archive learnt from
    the destination (a rebuilt catalog) rather than uploaded by a recorded run.
    """

    id: int
    run_id: int | None
    source: Path
    destination: str
    archive_id: str
    size: int
    sha256: str
    tree_hash: str
    part_size: int
    storage_class: str | None
    host: str
    created_at: datetime
    description: str | None
    manifest: JsonObject | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Archive:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            source=Path(row["source"]),
            destination=row["destination"],
            archive_id=row["archive_id"],
            size=row["size"],
            sha256=row["sha256"],
            tree_hash=row["tree_hash"],
            part_size=row["part_size"],
            storage_class=row["storage_class"],
            host=row["host"],
            created_at=parse_time(row["created_at"]),
            description=row["description"],
            manifest=json_or_none(row["manifest"]),
        )


@dataclass(frozen=True)
class Retrieval:
    """A request to bring an archive (or a vault inventory) back from cold storage."""

    id: int
    archive_row: int | None
    destination: str
    kind: RetrievalKind
    job_id: str | None
    tier: str
    state: RetrievalState
    requested_at: datetime
    ready_at: datetime | None
    updated_at: datetime
    download_path: Path | None
    detail: JsonObject | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Retrieval:
        return cls(
            id=row["id"],
            archive_row=row["archive_row"],
            destination=row["destination"],
            kind=RetrievalKind(row["kind"]),
            job_id=row["job_id"],
            tier=row["tier"],
            state=RetrievalState(row["state"]),
            requested_at=parse_time(row["requested_at"]),
            ready_at=_time_or_none(row["ready_at"]),
            updated_at=parse_time(row["updated_at"]),
            download_path=_path_or_none(row["download_path"]),
            detail=json_or_none(row["detail"]),
        )


@dataclass(frozen=True)
class DownloadPart:
    """A part of a retrieval's download spool, verified, written and synced to disk."""

    retrieval_id: int
    part_number: int  # from 0, as in ``parts``
    offset: int
    size: int
    sha256: str
    tree_hash: str
    done_at: datetime

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DownloadPart:
        return cls(
            retrieval_id=row["retrieval_id"],
            part_number=row["part_number"],
            offset=row["offset"],
            size=row["size"],
            sha256=row["sha256"],
            tree_hash=row["tree_hash"],
            done_at=parse_time(row["done_at"]),
        )


@dataclass(frozen=True)
class LogEntry:
    """One line of the run log; ``event`` is a short dotted name such as ``upload.initiated``."""

    id: int
    at: datetime
    run_id: int | None
    level: LogLevel
    event: str
    message: str
    detail: JsonObject | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LogEntry:
        return cls(
            id=row["id"],
            at=parse_time(row["at"]),
            run_id=row["run_id"],
            level=LogLevel(row["level"]),
            event=row["event"],
            message=row["message"],
            detail=json_or_none(row["detail"]),
        )


# --- column encodings ----------------------------------------------------------
# Times are stored as fixed-width ISO-8601 UTC text so that they sort as text.

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """Encode an aware datetime as stored: ``2026-11-05T10:00:00.123456Z``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware one")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def now_text() -> str:
    return format_time(datetime.now(UTC))


def dump_json(value: JsonObject | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def json_or_none(text: str | None) -> JsonObject | None:
    if text is None:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _time_or_none(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


def _path_or_none(text: str | None) -> Path | None:
    return None if text is None else Path(text)
