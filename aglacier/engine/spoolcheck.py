"""Check a spool against the hashes recorded when it was written, before resuming from it.

A damaged spool is staged again, never uploaded: the server would reject its
parts (their checksums were recorded from the original stream), and a part it
cannot check would be stored wrong. Two threads hash at once (hashlib
releases the GIL), so the check runs at about two cores' SHA256 speed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aglacier.state import Part, Run
from aglacier.units import MiB

_CHUNK = 4 * MiB


def spool_problem(run: Run, parts: Sequence[Part], *, threads: int = 2) -> str | None:
    """Why the run's spool cannot be resumed from, or ``None`` when it is intact."""
    path = run.spool_path
    if path is None:
        return "it has no spool"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"its spool {path} is gone"
    if run.archive_size is None or size != run.archive_size:
        return f"its spool {path} has {size} bytes, not the {run.archive_size} recorded"
    with ThreadPoolExecutor(max_workers=threads) as pool:
        digests = list(pool.map(lambda p: _part_sha256(path, p), parts))
    for part, digest in zip(parts, digests, strict=True):
        if digest != part.sha256:
            return f"part {part.part_number} of its spool {path} does not match its recorded SHA256"
    return None


def _part_sha256(path: Path, part: Part) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < part.size:
            chunk = os.pread(fd, min(_CHUNK, part.size - done), part.offset + done)
            if not chunk:
                break
            digest.update(chunk)
            done += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
