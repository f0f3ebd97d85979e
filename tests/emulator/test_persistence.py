"""State survives a restart on the same data folder; the folder layout others rely on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.vault_emulator import MIB, VaultEmulator
from tests.vault_emulator.testing import glacier_client

from .helpers import complete, random_bytes, reference_tree_hash, send_part, upload_archive


def test_everything_survives_a_restart(data_dir: Path) -> None:
    data = random_bytes(3 * MIB + 5)
    with VaultEmulator(data_dir) as first:
        client = glacier_client(first.endpoint_url)
        client.create_vault(vaultName="kept")
        archive_id = upload_archive(client, "kept", b"finished archive")
        upload_id = client.initiate_multipart_upload(
            vaultName="kept", partSize=str(MIB), archiveDescription="resumed"
        )["uploadId"]
        send_part(client, "kept", upload_id, 0, data[:MIB])
        send_part(client, "kept", upload_id, 3 * MIB, data[3 * MIB :])
        send_part(client, "kept", upload_id, 2 * MIB, random_bytes(MIB))  # replaced later
        job_id = client.initiate_job(
            vaultName="kept", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id}
        )["jobId"]
        client.close()
    with VaultEmulator(data_dir) as second:
        client = glacier_client(second.endpoint_url)
        assert [v["VaultName"] for v in client.list_vaults()["VaultList"]] == ["kept"]
        listing = client.list_parts(vaultName="kept", uploadId=upload_id)
        assert listing["ArchiveDescription"] == "resumed"
        assert [p["RangeInBytes"] for p in listing["Parts"]] == [
            f"0-{MIB - 1}",
            f"{2 * MIB}-{3 * MIB - 1}",
            f"{3 * MIB}-{3 * MIB + 4}",
        ]
        send_part(client, "kept", upload_id, MIB, data[MIB : 2 * MIB])
        send_part(client, "kept", upload_id, 2 * MIB, data[2 * MIB : 3 * MIB])
        resumed_id = complete(client, "kept", upload_id, data)
        assert second.archive_path("kept", resumed_id).read_bytes() == data
        output = client.get_job_output(vaultName="kept", jobId=job_id)["body"]
        assert output.read() == b"finished archive"
        output.close()
        client.close()


def test_data_folder_layout(glacier: Any, vault: str, data_dir: Path) -> None:
    data = random_bytes(MIB + 17)
    archive_id = upload_archive(glacier, vault, data)
    vault_dir = data_dir / "vaults" / vault
    assert (vault_dir / "archives" / archive_id).read_bytes() == data
    meta = json.loads((vault_dir / "archives" / f"{archive_id}.json").read_text())
    assert meta == {
        "archive_id": archive_id,
        "size": len(data),
        "tree_hash": reference_tree_hash(data),
        "description": "",
        "created": meta["created"],
        "deleted": None,
    }
    assert json.loads((vault_dir / "vault.json").read_text())["name"] == vault
    assert sorted(p.name for p in (vault_dir / "completed").iterdir())[0].endswith(".json")
    assert list((vault_dir / "uploads").iterdir()) == []
    assert list((data_dir / "tmp").iterdir()) == []


def test_stray_part_files_are_cleaned_at_start(data_dir: Path) -> None:
    with VaultEmulator(data_dir) as emulator:
        client = glacier_client(emulator.endpoint_url)
        client.create_vault(vaultName="v")
        upload_id = client.initiate_multipart_upload(vaultName="v", partSize=str(MIB))["uploadId"]
        send_part(client, "v", upload_id, 0, b"kept")
        client.close()
    upload_dir = data_dir / "vaults" / "v" / "uploads" / upload_id
    (upload_dir / "0.leftover-from-a-crash").write_bytes(b"junk")
    (data_dir / "tmp" / "half-received").write_bytes(b"junk")
    with VaultEmulator(data_dir):
        assert sorted(p.name for p in upload_dir.iterdir()) == sorted(
            ["upload.json", f"0.{hashlib.sha256(b'kept').hexdigest()}"]
        )
        assert list((data_dir / "tmp").iterdir()) == []
