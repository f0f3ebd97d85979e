"""`aglacier restore` and `verify` from a local folder, end to end: real gpg, real tar.

The archives of the refusal tests are made here, not by `aglacier backup`: a tar with
members outside the target folder (built with Python's tarfile, encrypted with gpg),
and an archive whose ciphertext was altered after its checksums were taken, both
recorded in the catalog as a rebuilt catalog would record them.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from aglacier.errors import ExitCode
from aglacier.state import StateStore
from tests.functional.conftest import Cli
from tests.functional.trees import decrypt_and_extract, make_source_tree, snapshot
from tests.gpgkeys import GnupgHome
from tests.restore.helpers import add_archive, encrypt, tar_bytes

KEY = "testhost/srv/made-here/20260101T000000Z-abcdef.tar.gpg"


@pytest.fixture
def cli(tmp_path: Path, gnupg_home: GnupgHome) -> Cli:
    dest = tmp_path / "dest"
    dest.mkdir()
    return Cli(tmp_path, gnupg_home, f"file://{dest}")


def archive_files(cli: Cli) -> list[Path]:
    dest = Path(cli.destination.removeprefix("file://"))
    return sorted(p for p in dest.rglob("*.tar.gpg") if ".uploads" not in p.parts)


def traces(folder: Path) -> list[Path]:
    """Anything a restore may leave behind: private extraction folders, download spools."""
    return [*folder.rglob(".aglacier-restore-*"), *folder.rglob("restore-*.tar.gpg")]


def record(cli: Cli, data: bytes, source: Path, archive_id: str = KEY) -> int:
    """Put ``data`` on the local destination and in the catalog; returns its catalog id."""
    path = Path(cli.destination.removeprefix("file://")) / archive_id
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)

    async def add() -> int:
        async with StateStore.open(cli.state_dir / "state.sqlite3") as store:
            archive = await add_archive(
                store,
                cli.destination,
                archive_id,
                data,
                source=source,
                created_at=datetime.now(UTC),
            )
            return archive.id

    cli.state_dir.mkdir(exist_ok=True)
    return anyio.run(add)


def test_restore_verify_and_what_is_refused(cli: Cli, tmp_path: Path) -> None:
    source = make_source_tree(tmp_path / "My Documents")
    assert cli.run("backup", str(source)).returncode == ExitCode.OK
    out = tmp_path / "out"

    restored = cli.run("restore", str(source), "--to", str(out))
    assert restored.returncode == ExitCode.OK, restored.stderr
    assert snapshot(out / "My Documents") == snapshot(source)
    assert "checked" in restored.stderr and "restored" in restored.stderr

    # Into a folder that already has the source's folder: refused, nothing touched.
    (out / "My Documents" / "plain.txt").write_text("changed here\n")
    (out / "My Documents" / "mine.txt").write_text("not in the archive\n")
    again = cli.run("restore", "1", "--to", str(out))
    assert again.returncode == ExitCode.USAGE
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    assert (out / "My Documents" / "plain.txt").read_text() == "changed here\n"
    overwritten = cli.run("restore", "1", "--to", str(out), "--overwrite")
    assert overwritten.returncode == ExitCode.OK, overwritten.stderr
    merged = snapshot(out / "My Documents")
    assert merged.pop("mine.txt") == ("file", b"not in the archive\n")
    assert merged == snapshot(source)

    assert cli.run("verify", "1").returncode == ExitCode.OK

    # --archive-only keeps the verified ciphertext; the manual way of docs/restore.md
    # (gpg -d | tar -x) restores it.
    kept = cli.run("restore", str(source), "--archive-only", "--to", str(tmp_path))
    assert kept.returncode == ExitCode.OK, kept.stderr
    [archive] = tmp_path.glob("My Documents-*.tar.gpg")
    assert archive.read_bytes() == archive_files(cli)[0].read_bytes()
    decrypt_and_extract(archive, cli.gnupg, tmp_path / "manual")
    assert snapshot(tmp_path / "manual" / "My Documents") == snapshot(source)
    assert traces(tmp_path) == []

    # A byte flipped in the stored archive: caught before anything is decrypted.
    [stored] = archive_files(cli)
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    stored.write_bytes(damaged)
    verify = cli.run("verify", "1")
    assert verify.returncode == ExitCode.INTEGRITY, verify.stderr
    assert "failed its check 3 times" in verify.stderr
    failed = cli.run("restore", "1", "--to", str(tmp_path / "out2"))
    assert failed.returncode == ExitCode.INTEGRITY
    assert not (tmp_path / "out2").exists()
    assert not list(tmp_path.rglob(".aglacier-restore-*"))


@pytest.mark.parametrize("bad", ["../escaped.txt", "/tmp/aglacier-test-absolute.txt"])
def test_members_outside_the_folder_are_refused(
    cli: Cli, tmp_path: Path, gnupg_home: GnupgHome, bad: str
) -> None:
    plaintext = tar_bytes([("made-here/ok.txt", b"fine\n" * 1000), (bad, b"evil\n")])
    catalog_id = record(cli, encrypt(plaintext, gnupg_home), Path("/srv/made-here"))
    into = tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    result = cli.run("restore", str(catalog_id), "--to", str(into))
    assert result.returncode == ExitCode.ERROR, result.stderr
    assert "outside the target folder" in result.stderr
    assert list(into.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["into"]
    assert not Path("/tmp/aglacier-test-absolute.txt").exists()


def test_gpg_failing_after_tar_leaves_no_plaintext(
    cli: Cli, tmp_path: Path, gnupg_home: GnupgHome
) -> None:
    # The checksums match (they were taken after the damage), so the download is
    # accepted; gpg's own integrity check fails only at the very end, after tar
    # has extracted every file: all of them must go.
    ciphertext = bytearray(encrypt(tar_bytes([("made-here/a.txt", b"a" * 50_000)]), gnupg_home))
    ciphertext[-1] ^= 0x01
    catalog_id = record(cli, bytes(ciphertext), Path("/srv/made-here"))
    result = cli.run("restore", str(catalog_id), "--to", str(tmp_path / "out"))
    assert result.returncode == ExitCode.GPG, result.stderr
    assert "manipulated" in result.stderr or "could not decrypt" in result.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.rglob(".aglacier-restore-*"))


def test_checks_before_any_request(cli: Cli, tmp_path: Path) -> None:
    """Expedited from Deep Archive, and a cost without --yes off a terminal: refused first."""

    async def add() -> int:
        async with StateStore.open(cli.state_dir / "state.sqlite3") as store:
            archive = await add_archive(
                store,
                "s3://no-such-bucket-aglacier/p",
                "k.tar.gpg",
                b"x" * 100,
                source=Path("/srv/s"),
                storage_class="DEEP_ARCHIVE",
            )
            return archive.id

    cli.state_dir.mkdir()
    catalog_id = str(anyio.run(add))
    expedited = cli.run(
        "restore", catalog_id, "--tier", "expedited", "--yes", "--to", str(tmp_path / "out")
    )
    assert expedited.returncode == ExitCode.USAGE
    assert "no Expedited retrieval" in expedited.stderr
    cli.write_config()
    unconfirmed = subprocess.run(
        [sys.executable, "-m", "aglacier", "verify", catalog_id],
        env=cli.env(),
        cwd=cli.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unconfirmed.returncode == ExitCode.USAGE, unconfirmed.stderr
    assert "--yes" in unconfirmed.stderr and "Bulk retrieval" in unconfirmed.stderr
    with closing(sqlite3.connect(cli.state_dir / "state.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM retrievals").fetchone() == (0,)
    assert not (tmp_path / "out").exists()
