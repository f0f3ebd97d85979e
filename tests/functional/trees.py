"""Source trees to back up, and an independent check that a restore equals them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.gpgkeys import GnupgHome

#: A line in a source file that must never appear in a spool or an archive.
PLAINTEXT_MARKER = b"PLAINTEXT-MARKER-7f3a9c-never-on-disk"


def make_source_tree(root: Path, *, big: int = 3 * 1024 * 1024) -> Path:
    """A folder with the things tar and restores get wrong, and a NOBACKUP folder."""
    root.mkdir(parents=True)
    (root / "plain.txt").write_bytes(PLAINTEXT_MARKER + b"\n")
    (root / "name with spaces.txt").write_text("spaces\n")
    (root / "ünïcødé-名前.txt").write_text("non-ASCII name\n")
    (root / "empty folder").mkdir()
    nested = root / "a" / "b" / "c"
    nested.mkdir(parents=True)
    (nested / "deep.bin").write_bytes(os.urandom(big))
    (root / "link-to-deep").symlink_to("a/b/c/deep.bin")
    (root / "dangling-link").symlink_to("does/not/exist")
    skipped = root / "cache"
    skipped.mkdir()
    (skipped / "NOBACKUP").touch()
    (skipped / "huge-and-unwanted.bin").write_bytes(b"x" * 1000)
    return root


def snapshot(root: Path, *, skip_tag: str | None = "NOBACKUP") -> dict[str, tuple[str, bytes]]:
    """Every entry under ``root`` by relative path.

    Values: ("dir", b""), ("file", contents) or ("link", target).
    """
    entries: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip_tag and (here / skip_tag).exists():
            dirnames.clear()
            continue
        for name in list(dirnames):
            path = here / name
            if path.is_symlink():
                entries[str(path.relative_to(root))] = ("link", str(path.readlink()).encode())
                dirnames.remove(name)
            elif skip_tag and (path / skip_tag).exists():
                dirnames.remove(name)
            else:
                entries[str(path.relative_to(root))] = ("dir", b"")
        for name in filenames:
            path = here / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", str(path.readlink()).encode())
            else:
                entries[rel] = ("file", path.read_bytes())
    return entries


def decrypt_and_extract(archive: Path, gnupg: GnupgHome, into: Path) -> None:
    """Restore the way a person without aglacier would: ``gpg -d | tar -x``."""
    into.mkdir(parents=True)
    gpg = subprocess.Popen(
        ["gpg", "--homedir", str(gnupg.home), "--batch", "--quiet", "-d", str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    tar = subprocess.run(
        ["tar", "-x", "-C", str(into)], stdin=gpg.stdout, capture_output=True, check=False
    )
    assert gpg.stdout is not None
    gpg.stdout.close()
    gpg_err = gpg.stderr.read() if gpg.stderr else b""
    if gpg.stderr:
        gpg.stderr.close()
    assert gpg.wait() == 0, gpg_err
    assert tar.returncode == 0, tar.stderr
