"""Two aglacier processes on one state, and Ctrl-C (once, and twice) during a backup."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

from aglacier.errors import ExitCode
from aglacier.state import STATE_FILE_NAME
from aglacier.units import MiB
from tests.functional.conftest import Cli
from tests.functional.e2e import (
    RANDOM_DATA,
    WAIT,
    Running,
    assert_one_vault_archive,
    attempted,
    big_source,
    catalog,
    expected_ranges,
    log_events,
    pending_runs,
    released,
    resume,
    wait_until,
)
from tests.vault_emulator import VaultEmulator


def start_held(vault: VaultEmulator, cli: Cli, run: Running) -> int:
    """Wait until ``run`` has staged everything and its first parts are parked; part count."""
    parts: int = run.wait_event("staging_done")["part_count"]
    vault.faults.wait_held(min(cli.concurrency, parts), timeout=WAIT)
    return parts


def test_second_process_on_the_same_state_is_refused(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    vault.faults.hold_parts_after(0)
    with released(vault, drop=False), Running(cli, "backup", "--json", str(source)) as first:
        start_held(vault, cli, first)
        second = cli.run("backup", str(source))
        assert second.returncode == ExitCode.STATE_LOCKED, second.stderr
        assert "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("aglacier: error: ")]
        assert len(errors) == 1, lines
        assert f"pid {first.pid}" in errors[0] and "aglacier backup" in errors[0]
        assert all(line.startswith(("aglacier: error: ", "aglacier: hint: ")) for line in lines)
        vault.release()
        assert first.finish() == ExitCode.OK, first.stderr
    assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    assert len(catalog(cli)) == 1


def test_ctrl_c_stops_resumably_and_resume_finishes(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    vault.faults.hold_parts_after(0)
    with released(vault), Running(cli, "backup", "--json", str(source)) as run:
        start_held(vault, cli, run)
        run.send(signal.SIGINT)  # to the process group, as a terminal's Ctrl-C
        status = run.finish(WAIT)
    assert status == ExitCode.RESUMABLE, run.stderr
    assert "Traceback" not in run.stderr
    assert "aglacier resume" in run.stderr
    [stopped] = pending_runs(cli)
    assert stopped["state"] == "staged" and stopped["parts_acknowledged"] == 0

    resume(cli)
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    counters = vault.counters()
    [upload_id] = {u for u, _ in counters.parts_stored}
    assert attempted(counters, upload_id) == {r: 1 for r in expected_ranges(entry["size"], MiB)}
    assert counters.requests.get("AbortMultipartUpload", 0) == 0


def test_ctrl_c_while_staging_stops_resumably_and_stages_again(
    vault: VaultEmulator, cli: Cli, tmp_path: Path
) -> None:
    """tar and gpg get the terminal's SIGINT too, and die of it: still "resumable"."""
    source = big_source(tmp_path / "big")
    cli.part_size = "8MiB"
    with Running(cli, "backup", "--json", str(source)) as run:
        tar = run.tar()
        os.kill(tar, signal.SIGSTOP)  # staging cannot end before the Ctrl-C
        first = run.wait_event("staging_progress")
        run.send(signal.SIGINT)  # aglacier, tar and gpg, as a terminal's Ctrl-C
        # tar gets its SIGINT too; aglacier may already have killed and reaped it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(tar, signal.SIGCONT)
        status = run.finish(WAIT)
    assert first["spooled"] < RANDOM_DATA
    assert status == ExitCode.RESUMABLE, run.stderr
    assert "Traceback" not in run.stderr and "aglacier resume" in run.stderr
    [stopped] = pending_runs(cli)
    assert stopped["state"] == "staging", stopped

    resume(cli)
    assert "run.restage" in log_events(cli)
    assert_one_vault_archive(cli, vault, source, tmp_path / "restored", large=True)
    # The half-staged upload is aborted: its ciphertext's session key is gone.
    assert vault.counters().requests.get("AbortMultipartUpload", 0) == 1


def test_second_ctrl_c_stops_at_once(
    vault: VaultEmulator, cli: Cli, source: Path, tmp_path: Path
) -> None:
    """The second Ctrl-C does not wait for state writes: exit 130 at once, nothing torn.

    To have a state write in flight when the signals come, this test holds the
    database's write lock: the parts the vault acknowledges cannot be recorded.
    """
    vault.faults.hold_parts_after(0)
    with released(vault), Running(cli, "backup", "--json", str(source)) as run:
        held = min(cli.concurrency, start_held(vault, cli, run))
        blocker = sqlite3.connect(cli.state_dir / STATE_FILE_NAME, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # aglacier's writes now wait (up to 10 s)
            vault.release()  # the parked parts are stored and acknowledged ...
            wait_until(lambda: len(vault.counters().parts_stored) == held, "parts stored")
            # ... and their acknowledgements wait for the lock. (Give the answers a moment
            # to arrive: a Ctrl-C before that would leave no state write in flight.)
            time.sleep(1.0)
            run.send(signal.SIGINT)
            run.wait_stderr("press Ctrl-C again", timeout=WAIT)
            run.send(signal.SIGINT)
            status = run.finish(WAIT)
        finally:
            if blocker.in_transaction:
                blocker.execute("ROLLBACK")
            blocker.close()
    assert status == ExitCode.INTERRUPTED, run.stderr
    assert "stopped at once" in run.stderr
    assert "Traceback" not in run.stderr
    [stopped] = pending_runs(cli)
    assert stopped["state"] == "staged"
    assert stopped["parts_acknowledged"] == 0  # the writes never happened

    resume(cli)
    entry = assert_one_vault_archive(cli, vault, source, tmp_path / "restored")
    counters = vault.counters()
    [upload_id] = {u for u, _ in counters.parts_stored}
    # The parts the vault had but the state did not were found on the vault, not resent.
    assert attempted(counters, upload_id) == {r: 1 for r in expected_ranges(entry["size"], MiB)}
    assert counters.requests.get("AbortMultipartUpload", 0) == 0
