"""Back up to each kind of destination, then restore with nothing but gpg and tar.

The archive is read behind aglacier's back: from the vault emulator's data
folder, from moto with a plain boto3 GET (after a restore request, as for any
DEEP_ARCHIVE object), or from the destination folder. Each must decrypt with
``gpg -d`` and extract with ``tar -x`` to exactly the source tree, and no
multipart upload may be left open on the destination.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.utils import calculate_tree_hash

from aglacier.errors import ExitCode
from aglacier.units import MiB
from tests.backends.aws_servers import boto3_client, create_bucket
from tests.functional.conftest import Cli
from tests.functional.e2e import (
    VAULT,
    assert_restores_to,
    catalog,
    expected_ranges,
    open_vault_uploads,
    spool_is_empty,
    untracked_uploads,
    vault_archive_ids,
)
from tests.functional.trees import PLAINTEXT_MARKER, make_source_tree
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """About 12 MiB: three parts of S3's smallest part size, twelve of 1 MiB."""
    return make_source_tree(tmp_path / "My Documents", big=12 * MiB)


def backup(cli: Cli, source: Path) -> list[dict[str, Any]]:
    """Run ``backup --json``; its events."""
    result = cli.run("backup", "--json", str(source))
    assert result.returncode == ExitCode.OK, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "run_finished" and events[-1]["outcome"] == "done"
    return events


def check_archive(data: bytes, entry: dict[str, Any], source: Path, part_size: int) -> None:
    """The bytes are the catalog's archive, and ciphertext only."""
    assert entry["source"] == str(source)
    assert entry["size"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["tree_hash"] == calculate_tree_hash(io.BytesIO(data))
    assert entry["part_size"] == part_size
    assert PLAINTEXT_MARKER not in data


def test_vault_round_trip(
    vault: VaultEmulator, gnupg_home: GnupgHome, tmp_path: Path, source: Path
) -> None:
    cli = Cli(
        tmp_path,
        gnupg_home,
        f"glacier://{VAULT}",
        endpoint_url=vault.endpoint_url,
        part_size="1MiB",
    )
    backup(cli, source)

    [entry] = catalog(cli)
    assert vault_archive_ids(vault) == [entry["archive_id"]]
    archive = vault.archive_path(VAULT, entry["archive_id"])
    check_archive(archive.read_bytes(), entry, source, MiB)
    assert_restores_to(archive, gnupg_home, source, tmp_path / "restored")

    counters = vault.counters()
    ranges = expected_ranges(entry["size"], MiB)
    assert len(ranges) >= 12
    assert sorted(r for _, r in counters.parts_stored) == sorted(ranges)  # each once
    assert counters.requests["CompleteMultipartUpload"] == 1
    assert counters.requests.get("AbortMultipartUpload", 0) == 0
    assert open_vault_uploads(vault) == []
    assert untracked_uploads(cli) == []
    assert spool_is_empty(cli)


def test_s3_round_trip(
    moto_s3_endpoint: str, gnupg_home: GnupgHome, tmp_path: Path, source: Path
) -> None:
    bucket = f"aglacier-e2e-{secrets.token_hex(4)}"
    create_bucket(moto_s3_endpoint, bucket)
    cli = Cli(
        tmp_path,
        gnupg_home,
        f"s3://{bucket}/prefix",
        endpoint_url=moto_s3_endpoint,
        part_size="5MiB",
    )
    events = backup(cli, source)
    assert sum(e["event"] == "part_uploaded" for e in events) >= 3

    [entry] = catalog(cli)
    key = entry["archive_id"]
    assert key.startswith("prefix/") and key.endswith(".tar.gpg")
    assert entry["storage_class"] == "DEEP_ARCHIVE"
    s3 = boto3_client("s3", moto_s3_endpoint)
    try:
        listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert sorted(o["Key"] for o in listed) == [key, f"{key}.manifest.json"]
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["StorageClass"] == "DEEP_ARCHIVE"
        # A DEEP_ARCHIVE object is read after a restore request (moto restores at once).
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        manifest = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{key}.manifest.json")["Body"].read()
        )
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    finally:
        s3.close()

    check_archive(data, entry, source, 5 * MiB)
    assert manifest["sha256"] == entry["sha256"]
    assert manifest["size"] == entry["size"]
    archive = tmp_path / "downloaded.tar.gpg"
    archive.write_bytes(data)
    assert_restores_to(archive, gnupg_home, source, tmp_path / "restored")
    assert untracked_uploads(cli) == []
    assert spool_is_empty(cli)


def test_local_round_trip(gnupg_home: GnupgHome, tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    cli = Cli(tmp_path, gnupg_home, f"file://{dest}", part_size="1MiB")
    backup(cli, source)

    [entry] = catalog(cli)
    archive = dest / entry["archive_id"]
    found = sorted(p for p in dest.rglob("*.tar.gpg") if ".uploads" not in p.parts)
    assert found == [archive]
    check_archive(archive.read_bytes(), entry, source, MiB)
    manifest = json.loads(Path(f"{archive}.manifest.json").read_text())
    assert manifest["sha256"] == entry["sha256"]
    assert_restores_to(archive, gnupg_home, source, tmp_path / "restored")

    uploads = dest / ".uploads"
    assert not uploads.exists() or [p.name for p in uploads.iterdir()] == []
    assert untracked_uploads(cli) == []
    assert spool_is_empty(cli)
