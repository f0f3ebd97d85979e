"""`aglacier restore` from a Glacier vault (the strict emulator) and from S3 (moto), end to end.

What a retrieval costs is counted on the emulator: one InitiateJob however often the
command runs, and after a `kill -9` only the missing ranges are read again. moto
finishes S3 restores at once; its state manager (``manual`` progression, so that it
never advances a restore by itself) and the key's own status hold one "in progress".
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from aglacier.errors import ExitCode
from tests.backends.aws_servers import create_bucket, moto_s3_endpoint  # noqa: F401 (a fixture)
from tests.functional.conftest import Cli
from tests.functional.trees import make_source_tree, snapshot
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator

MIB = 1 << 20


def wait_for_line(process: subprocess.Popen[bytes], text: str) -> str:
    """Read the process's stderr until a line holds ``text``; returns what was read."""
    assert process.stderr is not None
    seen: list[str] = []
    for raw in process.stderr:
        seen.append(raw.decode())
        if text in seen[-1]:
            return "".join(seen)
    raise AssertionError(f"{text!r} never came: {''.join(seen)}")


def get_job_outputs(vault: VaultEmulator) -> int:
    return vault.counters().requests.get("GetJobOutput", 0)


def done_parts(cli: Cli) -> int:
    with closing(sqlite3.connect(cli.state_dir / "state.sqlite3", timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM download_parts").fetchone()[0])


@pytest.fixture
def vault_cli(tmp_path: Path, gnupg_home: GnupgHome, vault: VaultEmulator) -> Cli:
    return Cli(tmp_path, gnupg_home, "glacier://backups", endpoint_url=vault.endpoint_url)


def test_vault_job_is_requested_once_and_waited_for(
    vault_cli: Cli, vault: VaultEmulator, tmp_path: Path
) -> None:
    source = make_source_tree(tmp_path / "src", big=2 * MIB)
    assert vault_cli.run("backup", str(source)).returncode == ExitCode.OK
    vault.set_job_delay(3600)
    out = tmp_path / "out"

    first = vault_cli.run("restore", str(source), "--to", str(out), "--yes")
    assert first.returncode == ExitCode.NOT_READY, first.stderr
    assert "not ready yet" in first.stderr and "run the same command again after" in first.stderr
    assert "estimated cost" in first.stderr and "3-5 hours" in first.stderr
    second = vault_cli.run("restore", str(source), "--to", str(out), "--yes")
    assert second.returncode == ExitCode.NOT_READY
    assert vault.counters().requests.get("InitiateJob") == 1
    status = vault_cli.run("restore", "--status")
    assert status.returncode == ExitCode.OK and "not ready yet" in status.stdout

    waiting = vault_cli.start(
        "restore", str(source), "--to", str(out), "--yes", "--wait", "--poll-interval", "0.2"
    )
    stderr = wait_for_line(waiting, "next check in")  # it is polling: now the job succeeds
    vault.complete_jobs()
    stderr += waiting.communicate(timeout=60)[1].decode()
    assert waiting.returncode == ExitCode.OK, stderr
    assert "waited" in stderr
    assert snapshot(out / "src") == snapshot(source)
    assert vault.counters().requests.get("InitiateJob") == 1
    assert not list(vault_cli.spool_dir.glob("restore-*"))


def test_vault_killed_download_resumes_with_the_missing_ranges(
    vault_cli: Cli, vault: VaultEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "big"
    source.mkdir()
    (source / "random.bin").write_bytes(os.urandom(12 * MIB))
    assert vault_cli.run("backup", str(source)).returncode == ExitCode.OK
    vault_cli.concurrency = 1
    vault.faults.set_latency(0.2)  # about five ranges a second, one at a time
    vault_cli.write_config()
    process = vault_cli.start("restore", str(source), "--to", str(tmp_path / "out"), "--yes")
    try:
        deadline = time.monotonic() + 60
        while not (vault_cli.state_dir / "state.sqlite3").exists() or done_parts(vault_cli) < 3:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.kill()  # kill -9
    finally:
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    kept = done_parts(vault_cli)
    total = -(-json.loads(vault_cli.run("list", "--json").stdout)[0]["size"] // MIB)
    assert 3 <= kept < total

    vault.reset()  # no latency, counters from zero
    # And a transient fault on the way: a range cut halfway is read again.
    vault.faults.drop_connection(operation="GetJobOutput", stage="response")
    resumed = vault_cli.run("restore", str(source), "--to", str(tmp_path / "out"), "--yes")
    assert resumed.returncode == ExitCode.OK, resumed.stderr
    assert get_job_outputs(vault) == (total - kept) + 1
    assert vault.counters().requests.get("InitiateJob", 0) == 0
    assert snapshot(tmp_path / "out" / "big") == snapshot(source)


# --- S3 ---------------------------------------------------------------------------------


@pytest.fixture
def held_restores(moto_s3_endpoint: str) -> Iterator[None]:  # noqa: F811 (the fixture)
    """moto's restores stop advancing by themselves (the server is shared: undone after)."""
    _state_manager(moto_s3_endpoint, "set-transition", {"progression": "manual", "times": 10**9})
    try:
        yield
    finally:
        _state_manager(moto_s3_endpoint, "unset-transition", None)


def _state_manager(endpoint: str, action: str, transition: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"model_name": "s3::keyrestore"}
    if transition is not None:
        body["transition"] = transition
    request = urllib.request.Request(  # noqa: S310 (an http URL on loopback)
        f"{endpoint}/moto-api/state-manager/{action}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        assert answer.status == 201


def _set_restore_status(bucket: str, status: str) -> None:
    """The restore state of the bucket's archive, in moto's in-process model."""
    from moto.s3.models import s3_backends

    keys = s3_backends["123456789012"]["aws"].buckets[bucket].keys
    [key] = [keys[name] for name in keys if name.endswith(".tar.gpg")]
    key.status = status


def test_s3_restore_held_in_progress_then_ready(
    tmp_path: Path,
    gnupg_home: GnupgHome,
    moto_s3_endpoint: str,  # noqa: F811 (the fixture)
    held_restores: None,
) -> None:
    bucket = f"aglacier-restore-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    create_bucket(moto_s3_endpoint, bucket)
    cli = Cli(
        tmp_path, gnupg_home, f"s3://{bucket}/backups", endpoint_url=moto_s3_endpoint,
        part_size="5MiB",
    )  # fmt: skip
    source = make_source_tree(tmp_path / "src", big=7 * MIB)
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    _set_restore_status(bucket, "IN_PROGRESS")
    out = tmp_path / "out"

    for _ in range(2):  # requested, then found still in progress
        held = cli.run("restore", str(source), "--to", str(out), "--yes")
        assert held.returncode == ExitCode.NOT_READY, held.stderr
        assert "not ready yet" in held.stderr
        assert "up to 12 hours: run the same command again after" in held.stderr
    assert not out.exists()

    _set_restore_status(bucket, "RESTORED")
    restored = cli.run("restore", str(source), "--to", str(out), "--yes")
    assert restored.returncode == ExitCode.OK, restored.stderr
    assert snapshot(out / "src") == snapshot(source)
    verified = cli.run("verify", str(source), "--yes")  # a new request: the copy is restored
    assert verified.returncode == ExitCode.OK, verified.stderr
