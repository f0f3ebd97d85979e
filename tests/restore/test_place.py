"""Putting extracted entries into place: never over, never through, never outside."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aglacier.errors import UsageError
from aglacier.restore.place import (
    TEMP_PREFIX,
    keep_archive,
    make_temp_dir,
    place_entries,
    remove_tree,
    stale_temp_dirs,
)


def extracted(into: Path) -> Path:
    temp = make_temp_dir(into)
    (temp / "photos" / "2026").mkdir(parents=True)
    (temp / "photos" / "2026" / "a.jpg").write_bytes(b"new a")
    (temp / "photos" / "b.jpg").write_bytes(b"new b")
    (temp / "photos" / "link").symlink_to("b.jpg")
    return temp


def test_temp_dir_is_private_and_named_after_the_process(tmp_path: Path) -> None:
    temp = make_temp_dir(tmp_path)
    assert temp.parent == tmp_path and temp.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(temp.stat().st_mode) == 0o700


def test_new_entries_are_moved(tmp_path: Path) -> None:
    temp = extracted(tmp_path)
    assert place_entries(temp, tmp_path, overwrite=False) == ["photos"]
    assert (tmp_path / "photos" / "2026" / "a.jpg").read_bytes() == b"new a"
    assert list(temp.iterdir()) == []


def test_existing_entry_is_refused_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "mine.txt").write_text("keep me")
    temp = extracted(tmp_path)
    with pytest.raises(UsageError, match="already exists"):
        place_entries(temp, tmp_path, overwrite=False)
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["mine.txt"]


def test_overwrite_merges_folders_and_replaces_files(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    (photos / "2026").mkdir(parents=True)
    (photos / "2026" / "a.jpg").write_bytes(b"old a")
    (photos / "mine.txt").write_text("keep me")
    (photos / "link").mkdir()  # a folder where the archive has a link
    temp = extracted(tmp_path)
    place_entries(temp, tmp_path, overwrite=True)
    assert (photos / "2026" / "a.jpg").read_bytes() == b"new a"
    assert (photos / "mine.txt").read_text() == "keep me"
    assert (photos / "link").is_symlink()


def test_overwrite_never_writes_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    into = tmp_path / "into"
    into.mkdir()
    (into / "photos").mkdir()
    (into / "photos" / "2026").symlink_to(outside)  # a link where the archive has a folder
    temp = extracted(into)
    place_entries(temp, into, overwrite=True)
    assert list(outside.iterdir()) == []
    assert not (into / "photos" / "2026").is_symlink()
    assert (into / "photos" / "2026" / "a.jpg").read_bytes() == b"new a"


def test_read_only_folders_are_moved_and_keep_their_mode(tmp_path: Path) -> None:
    temp = extracted(tmp_path)
    (temp / "photos" / "2026").chmod(0o555)
    (temp / "photos").chmod(0o555)
    place_entries(temp, tmp_path, overwrite=False)
    assert stat.S_IMODE((tmp_path / "photos").stat().st_mode) == 0o555
    (tmp_path / "photos").chmod(0o755)
    (tmp_path / "photos" / "2026").chmod(0o755)


def test_remove_tree_with_read_only_folders(tmp_path: Path) -> None:
    temp = extracted(tmp_path)
    (temp / "photos" / "2026").chmod(0o500)
    remove_tree(temp)
    assert not temp.exists()


def test_stale_dirs_are_those_of_dead_processes(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f"{TEMP_PREFIX}{dead.stdout.strip()}-abc"
    stale.mkdir()
    mine = make_temp_dir(tmp_path)
    (tmp_path / f"{TEMP_PREFIX}notapid-x").mkdir()
    assert stale_temp_dirs(tmp_path) == [stale]
    assert mine.exists()


def test_keep_archive_moves_the_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool.tar.gpg"
    spool.write_bytes(b"ciphertext")
    spool.chmod(0o600)
    target = tmp_path / "kept.tar.gpg"
    keep_archive(spool, target)
    assert target.read_bytes() == b"ciphertext" and not spool.exists()
