"""Records the emulator keeps (vaults, archives, uploads, parts, jobs) and their JSON form."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ARCHIVE_RETRIEVAL = "ArchiveRetrieval"
INVENTORY_RETRIEVAL = "InventoryRetrieval"


def iso_time(epoch: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, the form Glacier uses ("2012-03-20T17:03:43.221Z")."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_id(length: int) -> str:
    """A random URL- and file-name-safe id of ``length`` characters (AWS ids look alike)."""
    while True:
        raw = base64.urlsafe_b64encode(secrets.token_bytes(length)).decode()[:length]
        # A leading "-" would make the file name look like an option to shell tools.
        if not raw.startswith("-"):
            return raw


@dataclass
class Vault:
    """A vault's own metadata; the counts are as of its last inventory, as on AWS."""

    name: str
    created: str
    last_inventory: str | None = None
    inventory_archives: int = 0
    inventory_size: int = 0


@dataclass
class Archive:
    """A finished archive; ``deleted`` is set on a tombstone (deletes are idempotent)."""

    archive_id: str
    size: int
    tree_hash: str
    description: str
    created: str
    deleted: str | None = None


@dataclass(frozen=True)
class Part:
    """One stored part of a multipart upload; ``end`` is inclusive, as on the wire."""

    start: int
    end: int
    tree_hash: str
    sha256: str

    @property
    def size(self) -> int:
        """Length in bytes."""
        return self.end - self.start + 1

    @property
    def byte_range(self) -> str:
        """The "first-last" form used by ListParts and the counters."""
        return f"{self.start}-{self.end}"

    @property
    def file_name(self) -> str:
        """Data file name; content-addressed so a new upload of a range never clobbers the
        file the metadata still points to."""
        return f"{self.start}.{self.sha256}"


@dataclass
class Upload:
    """An in-progress multipart upload."""

    upload_id: str
    part_size: int
    description: str
    created: str
    parts: dict[int, Part] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form (parts as a list sorted by offset)."""
        data = asdict(self)
        data["parts"] = [asdict(self.parts[k]) for k in sorted(self.parts)]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upload:
        """Inverse of ``to_json``."""
        parts = [Part(**p) for p in data.pop("parts")]
        return cls(**data, parts={p.start: p for p in parts})


@dataclass(frozen=True)
class Completion:
    """What a completed upload produced, so that a repeated complete answers the same."""

    upload_id: str
    archive_id: str
    size: int
    tree_hash: str


@dataclass
class Job:
    """A retrieval job; it is done once the clock passes ``ready_at`` (epoch seconds)."""

    job_id: str
    action: str
    created: str
    ready_at: float
    seq: int = 0  # initiation order; timestamps can tie within a millisecond
    description: str | None = None
    sns_topic: str | None = None
    tier: str | None = None
    archive_id: str | None = None
    archive_size: int | None = None
    archive_tree_hash: str | None = None
    archive_description: str | None = None
    range_start: int | None = None
    range_end: int | None = None
    range_tree_hash: str | None = None
    inventory_format: str | None = None
    inventory_size: int | None = None

    def done(self, now: float | None = None) -> bool:
        """Whether the job has Succeeded at time ``now`` (default: the current time)."""
        return (time.time() if now is None else now) >= self.ready_at


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary name, then rename) so a crash leaves old or new."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """Read a JSON file written by ``write_json``."""
    return json.loads(path.read_text())
