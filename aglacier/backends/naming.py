"""What an archive is called and what its manifest says, on every destination that names it.

S3 and a local folder store an archive under the same relative key, and a
small JSON manifest beside it::

    [prefix/]{host}/{source path made safe}/{UTC timestamp}-{suffix}.tar.gpg
    [prefix/]{host}/{source path made safe}/{UTC timestamp}-{suffix}.tar.gpg.manifest.json

e.g. ``backups/anna-laptop/home/anna/Photos_2024/20261115T103005Z-k3x9qa.tar.gpg``.
The suffix is random, so that two runs of one source in the same second never
get the same key (S3 would silently replace the older archive). A vault names
an archive itself and keeps what a person can read in its description instead.

The manifest holds enough to rebuild a lost catalog entry from the destination:
the source, host and time, the archive's size, SHA256 and tree hash, its part
size and count, and the S3 composite checksum its parts give (what S3 reports
for the object, and what ``aglacier checksum --s3-part-size`` prints for a
copy). ``storage_class`` appears only on S3.

Pure functions: no I/O, nothing of aiobotocore.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from aglacier.backends.base import ArchiveInfo, ArchiveTotals

ARCHIVE_SUFFIX = ".tar.gpg"
MANIFEST_SUFFIX = ".manifest.json"
#: Version of the manifest's JSON layout.
MANIFEST_FORMAT = 1
#: UTF-8 bytes of a source path in a key (S3 allows 1,024 for the whole key).
MAX_SOURCE_BYTES = 240
MAX_COMPONENT_BYTES = 120
MAX_HOST_BYTES = 63
#: Lowercase RFC 4648 base32: no characters a file system or URL treats specially.
SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
SUFFIX_LENGTH = 6  # 30 random bits

_UNDERSCORES = re.compile("_+")


def random_suffix() -> str:
    """A short random suffix that keeps two keys of the same second apart."""
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def archive_key(info: ArchiveInfo, *, prefix: str = "", suffix: str | None = None) -> str:
    """``[prefix/]{host}/{source path made safe}/{UTC timestamp}-{suffix}.tar.gpg``.

    Readable (letters and digits of any script kept), safe (only letters,
    digits and ``-_.`` in a component; never ``.`` or ``..``, and the host
    never starts with a dot) and bounded (a long source path keeps its tail,
    after a hash of the whole path). ``suffix`` defaults to :func:`random_suffix`.
    """
    host = safe_component(info.host, MAX_HOST_BYTES).lstrip(".") or "unknown-host"
    stamp = utc(info.created_at).strftime("%Y%m%dT%H%M%SZ")
    name = f"{stamp}-{suffix or random_suffix()}{ARCHIVE_SUFFIX}"
    components = [prefix.strip("/"), host, safe_source_path(info.source), name]
    return "/".join(c for c in components if c)


def manifest_key(key: str) -> str:
    """The manifest beside the archive at ``key``."""
    return key + MANIFEST_SUFFIX


def safe_source_path(source: str) -> str:
    """A source path as key components: ``/home/anna/My Photos`` → ``home/anna/My_Photos``."""
    names = [p for p in PurePosixPath(source).parts if p not in ("/", "..")]
    parts = [safe_component(p, MAX_COMPONENT_BYTES) for p in names]
    parts = [p for p in parts if p] or ["_root_"]
    path = "/".join(parts)
    if len(path.encode()) <= MAX_SOURCE_BYTES:
        return path
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    head = f"_cut_{digest}"
    budget = MAX_SOURCE_BYTES - len(head)
    tail: list[str] = []
    for part in reversed(parts):
        budget -= len(part.encode()) + 1
        if budget < 0:
            break
        tail.insert(0, part)
    return "/".join([head, *tail])


def safe_component(text: str, max_bytes: int) -> str:
    """One key component: NFC letters and digits, ``-`` and ``.``; all else one ``_``."""
    text = unicodedata.normalize("NFC", text)
    safe = _UNDERSCORES.sub("_", "".join(c if c.isalnum() or c in "-." else "_" for c in text))
    if safe.strip(".") == "":
        return "_" if safe else ""  # never a "." or ".." component
    encoded = safe.encode()[:max_bytes]
    return encoded.decode(errors="ignore")


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC, never local time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def manifest_document(
    *,
    key: str,
    info: ArchiveInfo,
    totals: ArchiveTotals,
    s3_checksum: str,
    storage_class: str | None = None,
) -> dict[str, Any]:
    """What the manifest says: enough to rebuild a catalog entry from the destination."""
    document: dict[str, Any] = {
        "format": "aglacier-manifest",
        "format_version": MANIFEST_FORMAT,
        "key": key,
        "source": info.source,
        "host": info.host,
        "created_at": utc(info.created_at).isoformat(),
        "size": totals.size,
        "sha256": totals.sha256.hex(),
        "tree_hash": totals.tree_hash.hex(),
        "part_size": info.part_size,
        "part_count": totals.part_count,
    }
    if storage_class is not None:
        document["storage_class"] = storage_class
    document["s3_checksum"] = s3_checksum
    document["aglacier_version"] = info.aglacier_version
    return document


def manifest_bytes(document: dict[str, Any]) -> bytes:
    """The manifest as stored: indented JSON in ASCII (non-ASCII escaped), one final newline."""
    return (json.dumps(document, indent=2, ensure_ascii=True) + "\n").encode()


def parse_manifest(body: bytes) -> dict[str, Any] | None:
    """A stored manifest's fields, or ``None`` if ``body`` is not a JSON object."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
