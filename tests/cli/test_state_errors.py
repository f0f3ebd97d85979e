"""A damaged or foreign state database, or a held lock: one line, its own exit code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aglacier.cli.main import main
from aglacier.errors import ExitCode
from aglacier.state import STATE_FILE_NAME, RunLock


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("AGLACIER_STATE_DIR", str(folder))
    return folder


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("aglacier: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", [["list"], ["log"], ["list-pending", "--local-only"]])
def test_damaged_database_is_refused_and_left_alone(
    state_dir: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    damaged = state_dir / STATE_FILE_NAME
    damaged.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    before = damaged.read_bytes()
    assert main(command) == ExitCode.STATE_DAMAGED
    assert str(damaged) in _one_error_line(capsys.readouterr().err)
    assert damaged.read_bytes() == before


def test_foreign_database_is_refused(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = state_dir / STATE_FILE_NAME
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.close()
    before = foreign.read_bytes()
    assert main(["list"]) == ExitCode.STATE_DAMAGED
    _one_error_line(capsys.readouterr().err)
    assert foreign.read_bytes() == before


def test_held_lock_refuses_a_writing_command(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    passphrase = tmp_path / "pass"
    passphrase.write_text("secret\n")
    passphrase.chmod(0o600)
    with RunLock(state_dir, command="aglacier backup (another one)"):
        code = main(["backup", "--passphrase-file", str(passphrase), str(source)])
    assert code == ExitCode.STATE_LOCKED
    assert "another aglacier" in _one_error_line(capsys.readouterr().err)
