"""``kill -9`` a backup at distinct points, then ``aglacier resume`` must finish it.

Each crash kills the whole process group (aglacier, tar and gpg) with SIGKILL:
nothing runs a cleanup. Afterwards the archive must be byte-exact (it decrypts
to the source), stored once, recorded once, with no upload left open on the
destination, and resume must send again at most the parts that were in flight
(the vault emulator counts every part upload per upload id and byte range).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
from pathlib import Path

import pytest

from aglacier.errors import ExitCode
from aglacier.units import MiB
from tests.backends.aws_servers import boto3_client, create_bucket
from tests.functional.conftest import Cli
from tests.functional.e2e import (
    RANDOM_DATA,
    WAIT,
    Running,
    assert_one_vault_archive,
    assert_restores_to,
    attempted,
    big_source,
    catalog,
    expected_ranges,
    log_events,
    pending_runs,
    released,
    resume,
    spool_is_empty,
    untracked_uploads,
    vault_archive_ids,
)
from tests.functional.trees import make_source_tree
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator


def test_kill_while_staging_stages_again(vault: VaultEmulator, cli: Cli, tmp_path: Path) -> None:
    source = big_source(tmp_path / "big")
    cli.part_size = "8MiB"
    with Running(cli, "backup", "--json", str(source)) as run:
        # tar stopped mid-stream: staging cannot end before the kill, on any machine.
        os.kill(run.tar(), signal.SIGSTOP)
        first = run.wait_event("staging_progress")
        run.kill9()
    assert first["spooled"] < RANDOM_DATA

    [killed] = pending_runs(cli)
    assert killed["state"] in ("staging", "planned"), killed
    old_upload = killed["upload_id"]

    resume(cli)
    assert "run.restage" in log_events(cli)
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored", large=True)
    counters = vault.counters()
    # The spool of a run killed while staging cannot be trusted (and gpg's output is not
    # reproducible): the old upload is aborted, the one abort aglacier makes unasked.
    aborted = counters.requests.get("AbortMultipartUpload", 0)
    assert aborted == (1 if old_upload else 0)
    new_uploads = {u for u, _ in counters.parts_stored} - {old_upload}
    assert len(new_uploads) == 1
    [new_upload] = new_uploads
    assert attempted(counters, new_upload) == {
        r: 1 for r in expected_ranges(entry["size"], 8 * MiB)
    }


@pytest.mark.parametrize(
    ("acknowledged", "command"),
    [(0, "resume"), (3, "resume"), (3, "backup")],
    ids=["before-any-part", "3-of-6-parts", "3-of-6-parts-then-backup-again"],
)
def test_kill_with_parts_in_flight_resends_only_those(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path, acknowledged: int, command: str
) -> None:
    """``command``: ``resume``, or ``backup SOURCE`` again (cron), which resumes the run."""
    vault.faults.hold_parts_after(acknowledged)
    with released(vault), Running(cli, "backup", "--json", str(source)) as run:
        parts = run.wait_event("staging_done")["part_count"]
        assert parts == 6
        in_flight = min(cli.concurrency, parts - acknowledged)
        vault.faults.wait_held(in_flight, timeout=WAIT)
        if acknowledged:
            run.wait_event("part_uploaded", acknowledged)
        before = vault.counters()
        run.kill9()
    # released: the parked uploads of the dead client are cut off and store nothing.

    [killed] = pending_runs(cli)
    assert killed["state"] == "staged", killed
    assert killed["parts_spooled"] == parts
    assert killed["parts_acknowledged"] <= acknowledged
    upload_id = killed["upload_id"]
    stored_before = {r for (u, r) in before.parts_stored if u == upload_id}
    assert len(stored_before) == acknowledged
    assert before.requests.get("CompleteMultipartUpload", 0) == 0

    if command == "resume":
        resume(cli)
    else:
        again = cli.run("backup", str(source))
        assert again.returncode == ExitCode.OK, again.stderr
        assert "resuming unfinished run" in again.stderr
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    counters = vault.counters()
    ranges = expected_ranges(entry["size"], MiB)
    # The same upload was finished, every range stored exactly once: the parts stored
    # before the kill were not sent again, the ones in flight were sent once more.
    assert {u for u, _ in counters.parts_stored} == {upload_id}
    assert attempted(counters, upload_id) == {r: 1 for r in ranges}
    assert {r: n for (_, r), n in counters.parts_stored.items()} == {r: 1 for r in ranges}
    assert counters.requests["UploadMultipartPart"] <= parts + cli.concurrency
    assert counters.requests["CompleteMultipartUpload"] == 1
    assert counters.requests.get("AbortMultipartUpload", 0) == 0


def test_kill_between_complete_and_catalog_records_one_archive(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    vault.faults.hold_responses("CompleteMultipartUpload")
    # Not dropped: the complete took effect on the vault, only its answer is lost.
    with released(vault, drop=False), Running(cli, "backup", "--json", str(source)) as run:
        vault.faults.wait_held(1, timeout=WAIT)
        run.kill9()
    [completed] = vault_archive_ids(vault)

    [killed] = pending_runs(cli)
    assert killed["state"] == "completing", killed
    before = vault.counters()

    resume(cli)
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    assert entry["archive_id"] == completed
    counters = vault.counters()
    # Nothing was sent again: completing the same upload again gave the same archive.
    assert counters.requests["UploadMultipartPart"] == before.requests["UploadMultipartPart"]
    assert counters.requests["CompleteMultipartUpload"] == 2
    assert counters.requests.get("InitiateMultipartUpload") == 1
    assert counters.requests.get("AbortMultipartUpload", 0) == 0


def test_s3_kill_with_parts_in_flight(
    moto_s3_endpoint: str, gnupg_home: GnupgHome, tmp_path: Path
) -> None:
    source = make_source_tree(tmp_path / "src", big=34 * MiB)  # 7 parts
    bucket = f"aglacier-e2e-{secrets.token_hex(4)}"
    create_bucket(moto_s3_endpoint, bucket)
    cli = Cli(
        tmp_path, gnupg_home, f"s3://{bucket}/prefix", endpoint_url=moto_s3_endpoint,
        part_size="5MiB",
    )  # fmt: skip
    with Running(cli, "backup", "--json", str(source)) as run:
        run.wait_event("part_uploaded", 2)
        run.kill9()
    finished = [e for e in run.events if e["event"] == "run_finished"]
    assert finished == [], "the backup ended before it was killed"

    [killed] = pending_runs(cli)
    assert killed["state"] in ("staging", "staged"), killed
    assert killed["parts_acknowledged"] >= 2

    resume(cli)
    [entry] = catalog(cli)
    key = entry["archive_id"]
    s3 = boto3_client("s3", moto_s3_endpoint)
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="prefix/")["Contents"]
        assert sorted(o["Key"] for o in listed) == [key, f"{key}.manifest.json"]
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        s3.close()
    assert len(data) == entry["size"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    archive = tmp_path / "downloaded.tar.gpg"
    archive.write_bytes(data)
    assert_restores_to(archive, gnupg_home, source, tmp_path / "restored")
    assert untracked_uploads(cli) == []
    assert spool_is_empty(cli)
