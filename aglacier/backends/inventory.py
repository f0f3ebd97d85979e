"""Inventories of destinations that keep a manifest beside each archive (S3, local folder).

Pure functions: the S3 and local backends list their keys and sizes, and read
the manifests; these functions sort what was found into archives and things
that are not (see :class:`~aglacier.backends.base.SkipReason`) and check each
manifest (:mod:`aglacier.backends.naming` describes its fields). The archive's
own bytes are never read: its size against the manifest's is the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aglacier.backends.base import ListedArchive, SkippedEntry, SkipReason
from aglacier.backends.naming import ARCHIVE_SUFFIX, MANIFEST_SUFFIX

#: A manifest is a few hundred bytes; anything much larger is not one of ours.
MAX_MANIFEST_SIZE = 64 * 1024
MANIFEST_FORMAT_NAME = "aglacier-manifest"

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ManifestPair:
    """A manifest and the archive beside it, both present on the destination."""

    manifest_name: str
    archive_name: str
    archive_size: int


def sort_names(sizes: Mapping[str, int]) -> tuple[list[ManifestPair], list[SkippedEntry]]:
    """Pair each manifest with its archive; the rest is skipped, with why.

    ``sizes`` maps every key (or relative path) found to its size in bytes.
    """
    pairs: list[ManifestPair] = []
    skipped: list[SkippedEntry] = []
    for name in sorted(sizes):
        if name.endswith(ARCHIVE_SUFFIX + MANIFEST_SUFFIX):
            archive = name.removesuffix(MANIFEST_SUFFIX)
            if archive in sizes:
                pairs.append(ManifestPair(name, archive, sizes[archive]))
            else:
                skipped.append(_incomplete(name, archive))
        elif name.endswith(ARCHIVE_SUFFIX):
            if name + MANIFEST_SUFFIX not in sizes:
                skipped.append(
                    SkippedEntry(name, SkipReason.NO_MANIFEST, "an archive without its manifest")
                )
        else:
            skipped.append(SkippedEntry(name, SkipReason.FOREIGN, "not written by aglacier"))
    return pairs, skipped


def too_large(pair: ManifestPair, manifest_size: int) -> SkippedEntry | None:
    """A manifest too large to read, or ``None``."""
    if manifest_size <= MAX_MANIFEST_SIZE:
        return None
    return SkippedEntry(
        pair.manifest_name,
        SkipReason.BAD_MANIFEST,
        f"{manifest_size} bytes: too large to be an aglacier manifest",
    )


def listed_archive(
    pair: ManifestPair, document: Mapping[str, Any] | None
) -> ListedArchive | SkippedEntry:
    """The archive ``pair`` names, as its manifest describes it, or why it cannot be listed.

    The archive id is where the archive was found (the manifest's own ``key``
    may name another place if the archives were copied or moved).
    """
    if document is None:
        return SkippedEntry(pair.manifest_name, SkipReason.BAD_MANIFEST, "not a JSON object")
    problem = manifest_problem(document)
    if problem is not None:
        return SkippedEntry(pair.manifest_name, SkipReason.BAD_MANIFEST, problem)
    if document["size"] != pair.archive_size:
        return SkippedEntry(
            pair.archive_name,
            SkipReason.MISMATCH,
            f"{pair.archive_size} bytes, but its manifest says {document['size']}",
        )
    storage_class = document.get("storage_class")
    created_at = parse_utc(document["created_at"])
    assert created_at is not None  # checked by manifest_problem
    return ListedArchive(
        archive_id=pair.archive_name,
        size=pair.archive_size,
        tree_hash=document["tree_hash"],
        created_at=created_at,
        source=document["source"],
        host=document["host"],
        part_size=document["part_size"],
        sha256=document["sha256"],
        storage_class=storage_class if isinstance(storage_class, str) else None,
        manifest=dict(document),
    )


def manifest_problem(document: Mapping[str, Any]) -> str | None:
    """What makes ``document`` unusable as a manifest, or ``None``."""
    if document.get("format") != MANIFEST_FORMAT_NAME:
        return f"format is {document.get('format')!r}, not {MANIFEST_FORMAT_NAME!r}"
    for field in ("source", "host"):
        if not isinstance(document.get(field), str):
            return f"no {field}"
    if parse_utc(document.get("created_at")) is None:
        return f"created_at {document.get('created_at')!r} is not a time"
    for field in ("sha256", "tree_hash"):
        value = document.get(field)
        if not (isinstance(value, str) and _HEX64.fullmatch(value)):
            return f"{field} {value!r} is not 64 lowercase hex digits"
    if not _is_count(document.get("size"), minimum=0):
        return f"size {document.get('size')!r} is not a byte count"
    if not _is_count(document.get("part_size"), minimum=1):
        return f"part_size {document.get('part_size')!r} is not a byte count"
    return None


def parse_utc(value: object) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive means UTC), or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def in_order(archives: list[ListedArchive]) -> list[ListedArchive]:
    """Oldest first, then by id: the order the catalog lists them in."""
    return sorted(archives, key=lambda a: (a.created_at, a.archive_id))


def _is_count(value: object, *, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _incomplete(manifest: str, archive: str) -> SkippedEntry:
    return SkippedEntry(
        manifest,
        SkipReason.INCOMPLETE,
        f"no archive at {archive}: an upload that did not complete (or is completing now)",
    )
