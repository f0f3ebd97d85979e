"""Catalog entries and encrypted archives made on the spot, for the restore tests."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from botocore.utils import calculate_tree_hash

from aglacier.state import Archive, StateStore
from tests.gpgkeys import GnupgHome

MIB = 1 << 20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash_hex(data: bytes) -> str:
    """Glacier's tree hash by botocore: independent of aglacier.treehash."""
    return str(calculate_tree_hash(io.BytesIO(data)))


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A GNU tar of regular files with exactly these member names (any name goes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def encrypt(plaintext: bytes, gnupg: GnupgHome) -> bytes:
    """``gpg --encrypt`` to the test key, as a person (or another tool) would."""
    done = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(gnupg.home),
            "--batch",
            "--quiet",
            "--trust-model",
            "always",
            "--compress-algo",
            "none",
            "--encrypt",
            "-r",
            gnupg.fingerprint,
        ],
        input=plaintext,
        capture_output=True,
        check=True,
    )
    return done.stdout


async def add_archive(
    store: StateStore,
    destination: str,
    archive_id: str,
    data: bytes,
    *,
    source: Path,
    part_size: int = MIB,
    storage_class: str | None = None,
    created_at: datetime | None = None,
) -> Archive:
    """Record ``data`` as an archive in the catalog, with its true checksums."""
    return await store.add_archive(
        source,
        destination,
        archive_id,
        size=len(data),
        sha256=sha256_hex(data),
        tree_hash=tree_hash_hex(data),
        part_size=part_size,
        host="testhost",
        created_at=created_at or datetime.now(UTC),
        storage_class=storage_class,
    )


async def add_uploaded_archive(
    store: StateStore,
    destination: str,
    archive_id: str,
    data: bytes,
    *,
    source: Path,
    part_size: int = MIB,
) -> Archive:
    """Record ``data`` as the archive of a run from this machine, with its parts' checksums."""
    from aglacier.state import RunState

    run = await store.create_run(source, destination, part_size=part_size, host="testhost")
    await store.set_run_state(run.id, RunState.STAGING)
    for number, offset in enumerate(range(0, len(data), part_size)):
        chunk = data[offset : offset + part_size]
        await store.add_part(
            run.id, number, offset, len(chunk), sha256_hex(chunk), tree_hash_hex(chunk)
        )
    await store.set_staged(run.id, len(data), sha256_hex(data), tree_hash_hex(data))
    return await store.complete_run(run.id, archive_id)
