"""What the destination does wrong: forgotten uploads, errors, dropped connections.

All against the vault emulator, whose counters show what was sent where. None of
these faults may make aglacier abort an upload: an error stops the run with
everything acknowledged recorded, and ``aglacier resume`` finishes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from aglacier.errors import ExitCode
from aglacier.units import MiB
from tests.functional.conftest import Cli
from tests.functional.e2e import (
    VAULT,
    WAIT,
    Running,
    assert_one_vault_archive,
    attempted,
    expected_ranges,
    log_events,
    pending_runs,
    released,
    resume,
)
from tests.vault_emulator import VaultEmulator


def test_forgotten_upload_is_started_again_from_the_spool(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    vault.faults.hold_parts_after(2)
    with released(vault), Running(cli, "backup", "--json", str(source)) as run:
        parts = run.wait_event("staging_done")["part_count"]
        vault.faults.wait_held(min(cli.concurrency, parts - 2), timeout=WAIT)
        run.wait_event("part_uploaded", 2)
        run.kill9()
    [killed] = pending_runs(cli)
    assert killed["state"] == "staged" and killed["parts_acknowledged"] == 2
    old_upload = killed["upload_id"]
    spool = sorted(cli.spool_dir.iterdir())
    assert len(spool) == 1
    spooled = spool[0].read_bytes()
    # The vault forgets an upload after about 24 hours without activity.
    assert vault.forget_upload(old_upload)

    resume(cli)
    assert "upload.gone" in log_events(cli)
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    # The new upload came from the same spool: the archive is its very bytes.
    assert vault.archive_path(VAULT, entry["archive_id"]).read_bytes() == spooled
    counters = vault.counters()
    [new_upload] = {u for u, _ in counters.parts_stored} - {old_upload}
    assert attempted(counters, new_upload) == {r: 1 for r in expected_ranges(entry["size"], MiB)}
    assert counters.requests["InitiateMultipartUpload"] == 2
    assert counters.requests.get("AbortMultipartUpload", 0) == 0


def test_errors_and_dropped_connections_are_retried(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    faults = vault.faults
    faults.inject_error("UploadMultipartPart", "ServiceUnavailableException", count=2)
    faults.inject_error("UploadMultipartPart", "ThrottlingException", count=2)
    faults.drop_connection("UploadMultipartPart", count=1, stage="request")
    # The complete takes effect but its answer is lost: the retry completes again.
    faults.drop_connection("CompleteMultipartUpload", count=1, stage="response")
    # Retries back off by a random time up to 1 s, 2 s, 4 s ...: this takes a few seconds.
    result = cli.run("backup", "--json", str(source))
    assert result.returncode == ExitCode.OK, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    retries = [e["operation"] for e in events if e["event"] == "retrying"]
    # The part's dropped connection is retried once by aiohttp itself when it was a
    # reused (keep-alive) connection, as HTTP allows for a PUT; else by aglacier.
    assert retries.count("complete") == 1, retries
    parts_retried = [op for op in retries if op.startswith("upload_part ")]
    assert len(parts_retried) in (4, 5), retries
    assert len(retries) == 1 + len(parts_retried), retries

    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    counters = vault.counters()
    ranges = expected_ranges(entry["size"], MiB)
    # A refused or cut-off part stored nothing; each part was stored exactly once.
    assert {r: n for (_, r), n in counters.parts_stored.items()} == {r: 1 for r in ranges}
    assert counters.requests["UploadMultipartPart"] == len(ranges) + 5
    assert counters.requests["CompleteMultipartUpload"] == 2
    assert counters.requests.get("AbortMultipartUpload", 0) == 0


def test_a_failed_upload_is_never_aborted_and_resumes(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    """A part upload that fails for good stops the run resumable; nothing is aborted.

    (A transient error that outlasts every retry ends the same way, after about a
    minute of backoff; a refused part that is not retried shows it at once.)
    """
    vault.faults.inject_error("UploadMultipartPart", "ResourceNotFoundException", count=1)
    result = cli.run("backup", str(source))
    assert result.returncode == ExitCode.RESUMABLE, result.stderr
    assert "Traceback" not in result.stderr
    assert "aglacier resume" in result.stderr
    [stopped] = pending_runs(cli)
    assert stopped["state"] == "staged" and stopped["error"], stopped
    assert stopped["parts_acknowledged"] < stopped["parts_spooled"]
    assert vault.counters().requests.get("AbortMultipartUpload", 0) == 0

    resume(cli)
    assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    counters = vault.counters()
    assert counters.requests.get("AbortMultipartUpload", 0) == 0
    assert counters.requests["InitiateMultipartUpload"] == 1
    assert {n for n in counters.parts_stored.values()} == {1}
