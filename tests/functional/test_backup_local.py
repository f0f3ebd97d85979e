"""`aglacier backup` to a local folder, end to end, restored with plain gpg and tar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aglacier.errors import ExitCode
from tests.functional.conftest import Cli
from tests.functional.trees import (
    PLAINTEXT_MARKER,
    decrypt_and_extract,
    make_source_tree,
    snapshot,
)
from tests.gpgkeys import GnupgHome


@pytest.fixture
def cli(tmp_path: Path, gnupg_home: GnupgHome) -> Cli:
    dest = tmp_path / "dest"
    dest.mkdir()
    return Cli(tmp_path, gnupg_home, f"file://{dest}")


def archives_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.tar.gpg") if ".uploads" not in p.parts)


def test_backup_restores_with_plain_gpg_and_tar(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "My Documents")
    result = cli.run("backup", str(source))
    assert result.returncode == ExitCode.OK, result.stderr
    [archive] = archives_in(tmp_path / "dest")
    assert PLAINTEXT_MARKER not in archive.read_bytes()
    decrypt_and_extract(archive, cli.gnupg, tmp_path / "restored")
    assert snapshot(tmp_path / "restored" / "My Documents") == snapshot(source)
    assert "cache" not in snapshot(tmp_path / "restored" / "My Documents", skip_tag=None)
    # The spool is gone once the archive is stored.
    assert not any(cli.spool_dir.glob("*")) if cli.spool_dir.exists() else True


def test_catalog_and_log_record_the_archive(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    listed = cli.json("list")
    assert isinstance(listed, list) and len(listed) == 1
    [entry] = listed
    [archive] = archives_in(tmp_path / "dest")
    data = archive.read_bytes()
    import hashlib

    assert entry["source"] == str(source)
    assert entry["size"] == len(data)
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert archive.as_posix().endswith(entry["archive_id"])
    log = cli.run("log")
    assert log.returncode == 0
    assert "upload.initiated" in log.stdout and "run.done" in log.stdout
    pending = cli.run("list-pending", "--local-only")
    assert "no unfinished runs" in pending.stdout


def test_json_events_on_stdout(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    result = cli.run("backup", "--json", str(source))
    assert result.returncode == ExitCode.OK, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run_started"
    assert "part_uploaded" in names and "staging_done" in names
    assert names[-1] == "run_finished" and events[-1]["outcome"] == "done"


def test_single_file_source(cli: Cli, tmp_path: Path) -> None:
    single = tmp_path / "notes.txt"
    single.write_text("just one file\n")
    assert cli.run("backup", str(single)).returncode == ExitCode.OK
    [archive] = archives_in(tmp_path / "dest")
    decrypt_and_extract(archive, cli.gnupg, tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "just one file\n"


@pytest.mark.parametrize(
    ("setup", "code", "words"),
    [
        ("missing", ExitCode.SOURCE, "no such file or folder"),
        ("bad-recipient", ExitCode.GPG, "recipient"),
        ("no-dest", ExitCode.DESTINATION, "does not exist"),
        ("bad-part-size", ExitCode.PLAN, "part size"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    cli: Cli, tmp_path: Path, setup: str, code: ExitCode, words: str
) -> None:
    source = make_source_tree(tmp_path / "src")
    args = ["backup", str(source)]
    if setup == "missing":
        args = ["backup", str(tmp_path / "nope")]
    elif setup == "bad-recipient":
        args += ["--recipient", "nobody-we-know@example.invalid"]
    elif setup == "no-dest":
        cli.destination = f"file://{tmp_path}/no/such/disk"
    elif setup == "bad-part-size":
        args += ["-b", "8192"]  # 8 GiB: over the 5 GiB a part may have
    result = cli.run(*args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert any(words in line for line in lines), lines
    assert lines[0].startswith("aglacier: error: ")
    assert archives_in(tmp_path / "dest") == []
    assert not cli.spool_dir.exists() or not any(cli.spool_dir.iterdir())
    pending = cli.run("list-pending", "--local-only", "--json")
    assert json.loads(pending.stdout)["runs"] == []


def test_dry_run_sends_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    result = cli.run("backup", "-n", str(source))
    assert result.returncode == ExitCode.OK, result.stderr
    assert "part size" in result.stdout and "nothing was sent" in result.stdout
    assert archives_in(tmp_path / "dest") == []
    assert not cli.state_dir.exists()


def test_min_interval_skips_until_due_and_force_overrides(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    skipped = cli.run("backup", "--min-interval", "7d", str(source))
    assert skipped.returncode == ExitCode.OK
    assert "next due in 6d23h" in skipped.stderr or "next due in 7d" in skipped.stderr
    assert len(archives_in(tmp_path / "dest")) == 1
    forced = cli.run("backup", "--min-interval", "7d", "--force", str(source))
    assert forced.returncode == ExitCode.OK
    assert len(archives_in(tmp_path / "dest")) == 2


def test_plain_restore_pipe_reads_the_archive_to_its_end(cli: Cli, tmp_path: Path) -> None:
    """`gpg -d | tar -x` must not leave gpg writing into a closed pipe ("Broken pipe").

    tar stops reading at the end-of-archive record; if the archive were padded past
    it (larger tar records), gpg would fail on a perfectly good restore, at random.
    """
    source = tmp_path / "small"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    [archive] = archives_in(tmp_path / "dest")
    for attempt in range(8):
        decrypt_and_extract(archive, cli.gnupg, tmp_path / f"out{attempt}")


def test_dry_run_says_when_a_real_run_would_skip(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "src")
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    result = cli.run("backup", "-n", "--min-interval", "1d", str(source))
    assert result.returncode == ExitCode.OK
    assert f"would skip {source}: backed up recently" in result.stdout
    forced = cli.run("backup", "-n", "--min-interval", "1d", "--force", str(source))
    assert "part size" in forced.stdout
