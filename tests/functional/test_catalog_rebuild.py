"""`aglacier catalog rebuild`, end to end: back up, lose the state, rebuild, compare.

Each destination gets two sources backed up by the real command line; the catalog
`aglacier list --json` printed is kept, the state folder deleted, and the rebuilt
catalog must list the same archives with the same sources, hosts, sizes, hashes and
part sizes. What a destination cannot give back is asserted as such: a vault keeps
no plain SHA256 (the catalog says "unknown", all zeros), and a rebuilt row has no
run and records when the backup started rather than when it completed.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aglacier.catalog import UNKNOWN_SHA256
from aglacier.errors import ExitCode
from aglacier.units import MiB
from tests.backends.aws_servers import boto3_client, create_bucket
from tests.functional.conftest import Cli
from tests.functional.trees import make_source_tree
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator
from tests.vault_emulator.testing import glacier_client

#: The catalog fields a rebuild must give back exactly (``id``, ``run`` and
#: ``created_at`` are the new catalog's own).
KEPT = ("archive_id", "source", "destination", "host", "size", "tree_hash", "part_size",
        "storage_class")  # fmt: skip

Catalog = list[dict[str, Any]]


@pytest.fixture
def local_cli(tmp_path: Path, gnupg_home: GnupgHome) -> Cli:
    (tmp_path / "dest").mkdir()
    return Cli(tmp_path, gnupg_home, f"file://{tmp_path}/dest")


@pytest.fixture
def s3_cli(tmp_path: Path, gnupg_home: GnupgHome, moto_s3_endpoint: str) -> Cli:
    bucket = f"aglacier-test-{secrets.token_hex(6)}"
    create_bucket(moto_s3_endpoint, bucket)
    return Cli(tmp_path, gnupg_home, f"s3://{bucket}/backups", moto_s3_endpoint, "5MiB")


@pytest.fixture
def vault_cli(tmp_path: Path, gnupg_home: GnupgHome, vault: VaultEmulator) -> Cli:
    return Cli(tmp_path, gnupg_home, "glacier://backups", vault.endpoint_url)


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    """Two folders: one of two 1 MiB parts, one of a single part."""
    return [
        make_source_tree(tmp_path / "My Documents", big=MiB + MiB // 2),
        make_source_tree(tmp_path / "photos", big=1000),
    ]


def listed(cli: Cli) -> Catalog:
    """The catalog as `aglacier list --json` prints it."""
    catalog = cli.json("list")
    assert isinstance(catalog, list)
    return catalog


def backed_up(cli: Cli, sources: list[Path]) -> Catalog:
    """Back up ``sources``; the catalog."""
    result = cli.run("backup", *map(str, sources))
    assert result.returncode == ExitCode.OK, result.stderr
    catalog = listed(cli)
    assert len(catalog) == len(sources)
    return catalog


def lose_state(cli: Cli) -> None:
    shutil.rmtree(cli.state_dir)


def rebuild(cli: Cli, *args: str, code: ExitCode = ExitCode.OK) -> dict[str, Any]:
    """Run `catalog rebuild --json`; its summary."""
    result = cli.run("catalog", "rebuild", "--json", *args)
    assert result.returncode == code, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def kept(catalog: Catalog) -> list[dict[str, Any]]:
    return sorted(({k: entry[k] for k in KEPT} for entry in catalog), key=lambda e: e["archive_id"])


def skipped(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((s["reason"], s["name"]) for s in summary["skipped"])


def test_local_folder(local_cli: Cli, sources: list[Path], tmp_path: Path) -> None:
    lost = backed_up(local_cli, sources)
    (tmp_path / "dest" / "README.txt").write_text("not an archive\n")
    lose_state(local_cli)

    dry = rebuild(local_cli, "--dry-run")
    summary = rebuild(local_cli)

    assert dry["added"] == summary["added"] and dry["dry_run"]
    assert summary["found"] == 2 and summary["known"] == []  # the dry run added nothing
    assert skipped(summary) == [("foreign", "README.txt")]
    rebuilt = listed(local_cli)
    assert kept(rebuilt) == kept(lost)
    assert sorted(e["sha256"] for e in rebuilt) == sorted(e["sha256"] for e in lost)
    assert {e["run"] for e in rebuilt} == {None}
    again = rebuild(local_cli)
    assert again["added"] == [] and sorted(again["known"]) == sorted(e["archive_id"] for e in lost)

    # A manifest without its archive (an upload that never completed) needs a look: exit 1.
    manifest = tmp_path / "dest" / (lost[0]["archive_id"] + ".manifest.json")
    manifest.with_name("20000101T000000Z-aaaaaa.tar.gpg.manifest.json").write_bytes(
        manifest.read_bytes()
    )
    result = local_cli.run("catalog", "rebuild")
    assert result.returncode == ExitCode.WARNINGS, result.stderr
    assert "incomplete" in result.stdout and "0 added, 2 already in the catalog" in result.stdout


def test_s3(s3_cli: Cli, sources: list[Path], moto_s3_endpoint: str) -> None:
    lost = backed_up(s3_cli, sources)
    bucket = s3_cli.destination.removeprefix("s3://").split("/")[0]
    client = boto3_client("s3", moto_s3_endpoint)
    try:
        client.put_object(Bucket=bucket, Key="backups/index.html", Body=b"<p>hi</p>")
    finally:
        client.close()
    lose_state(s3_cli)

    summary = rebuild(s3_cli)

    assert summary["found"] == 2 and len(summary["added"]) == 2
    assert skipped(summary) == [("foreign", "backups/index.html")]
    rebuilt = listed(s3_cli)
    assert kept(rebuilt) == kept(lost)
    assert {e["storage_class"] for e in rebuilt} == {"DEEP_ARCHIVE"}
    assert sorted(e["sha256"] for e in rebuilt) == sorted(e["sha256"] for e in lost)
    assert rebuild(s3_cli)["added"] == []


def test_vault(vault_cli: Cli, sources: list[Path], vault: VaultEmulator) -> None:
    lost = backed_up(vault_cli, sources)
    foreign = glacier_client(vault.endpoint_url).upload_archive(
        vaultName="backups", archiveDescription="old script: /home/x", body=b"x" * 100
    )["archiveId"]
    lose_state(vault_cli)

    summary = rebuild(vault_cli, "--wait")

    assert summary["found"] == 3 and len(summary["added"]) == 2
    assert skipped(summary) == [("foreign", foreign)]
    rebuilt = listed(vault_cli)
    assert kept(rebuilt) == kept(lost)
    assert {e["sha256"] for e in rebuilt} == {UNKNOWN_SHA256}  # a vault keeps none
    assert UNKNOWN_SHA256 not in {e["sha256"] for e in lost}

    everything = rebuild(vault_cli, "--all")
    assert [a["archive_id"] for a in everything["added"]] == [foreign]
    assert len(everything["known"]) == 2 and everything["skipped"] == []
    [row] = [e for e in listed(vault_cli) if e["archive_id"] == foreign]
    assert (row["source"], row["host"], row["size"]) == ("old script: /home/x", "", 100)
    assert vault.counters().requests["InitiateJob"] == 1  # found on the vault the second time


@pytest.fixture
def slow_vault(vault: VaultEmulator) -> Iterator[VaultEmulator]:
    vault.set_job_delay(3600)
    yield vault
    vault.set_job_delay(0)


def test_vault_job_not_ready_is_kept_and_reused(
    vault_cli: Cli, sources: list[Path], slow_vault: VaultEmulator
) -> None:
    lost = backed_up(vault_cli, sources[1:])
    lose_state(vault_cli)

    for _ in range(2):
        result = vault_cli.run("catalog", "rebuild")
        assert result.returncode == ExitCode.NOT_READY, result.stderr
        assert "not ready yet" in result.stderr and "again after" in result.stderr
        assert slow_vault.counters().requests["InitiateJob"] == 1
    assert slow_vault.counters().requests["DescribeJob"] >= 2

    slow_vault.complete_jobs()
    result = vault_cli.run("catalog", "rebuild")
    assert result.returncode == ExitCode.OK, result.stderr
    assert "1 archives found, 1 added" in result.stdout and "SHA256" in result.stdout
    assert kept(listed(vault_cli)) == kept(lost)
    assert slow_vault.counters().requests["InitiateJob"] == 1
