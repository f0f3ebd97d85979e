"""Decrypt and extract with real gpg and GNU tar: what is refused leaves nothing behind."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from aglacier.config import EncryptionConfig
from aglacier.errors import GpgError
from aglacier.restore.decrypt import Decryption, resolve_decryption
from aglacier.restore.extract import Extraction, UnsafeArchiveError, unsafe_member
from aglacier.restore.place import TEMP_PREFIX
from aglacier.staging.tar import find_gnu_tar
from tests.gpgkeys import GnupgHome, kill_agent, new_home
from tests.restore.helpers import MIB, encrypt, tar_bytes

TAR = find_gnu_tar(os.environ.get("PATH", os.defpath))
GOOD = [("photos/a.txt", b"alpha\n"), ("photos/sub/b.bin", os.urandom(2 * MIB))]


@pytest.fixture
def decryption(gnupg_home: GnupgHome) -> Decryption:
    return resolve_decryption(EncryptionConfig(gnupghome=gnupg_home.home), dict(os.environ))


def run(download: Path, into: Path, decryption: Decryption, overwrite: bool = False) -> list[str]:
    job = Extraction(download, into, decryption, tar=TAR, overwrite=overwrite)
    job.run()
    return job.outcome()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_unsafe_member_names() -> None:
    for name in ("/etc/passwd", "../x", "a/../../x", "a/..", ".."):
        assert unsafe_member(name)
    for name in ("a/b", "a..b/c", "...", "a/.../b", "./a", "a\\n.."):
        assert not unsafe_member(name)


def test_good_archive_is_extracted(
    tmp_path: Path, gnupg_home: GnupgHome, decryption: Decryption
) -> None:
    download = tmp_path / "download.tar.gpg"
    download.write_bytes(encrypt(tar_bytes(GOOD), gnupg_home))
    into = tmp_path / "into"
    into.mkdir()
    assert run(download, into, decryption) == ["photos"]
    assert (into / "photos" / "sub" / "b.bin").read_bytes() == GOOD[1][1]
    assert leftovers(into) == ["photos"]


@pytest.mark.parametrize("bad", ["../escaped.txt", "/tmp/aglacier-absolute.txt", "photos/../../up"])
def test_members_outside_are_refused(
    tmp_path: Path, gnupg_home: GnupgHome, decryption: Decryption, bad: str
) -> None:
    download = tmp_path / "download.tar.gpg"
    download.write_bytes(encrypt(tar_bytes([*GOOD, (bad, b"evil")]), gnupg_home))
    into = tmp_path / "a" / "into"
    into.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="outside the target folder"):
        run(download, into, decryption)
    assert leftovers(into) == []
    assert leftovers(tmp_path / "a") == ["into"]
    assert not Path("/tmp/aglacier-absolute.txt").exists()


def test_damaged_integrity_check_leaves_no_plaintext(
    tmp_path: Path, gnupg_home: GnupgHome, decryption: Decryption
) -> None:
    # The last byte belongs to gpg's integrity check: tar gets every byte of the
    # plaintext and succeeds, and only then does gpg say the message was altered.
    ciphertext = bytearray(encrypt(tar_bytes(GOOD), gnupg_home))
    ciphertext[-1] ^= 0x01
    download = tmp_path / "download.tar.gpg"
    download.write_bytes(ciphertext)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(GpgError, match="could not decrypt"):
        run(download, into, decryption)
    assert leftovers(into) == []


def test_a_key_that_cannot_decrypt(tmp_path: Path, gnupg_home: GnupgHome) -> None:
    from tests.gpgkeys import generate_key

    other = new_home(tmp_path / "other")
    try:
        generate_key(other, "someone else <else@example.invalid>")
        decryption = resolve_decryption(EncryptionConfig(gnupghome=other), dict(os.environ))
        download = tmp_path / "download.tar.gpg"
        download.write_bytes(encrypt(tar_bytes(GOOD), gnupg_home))
        into = tmp_path / "into"
        into.mkdir()
        with pytest.raises(GpgError):
            run(download, into, decryption)
        assert leftovers(into) == []
    finally:
        kill_agent(other)


def test_no_secret_key_is_found_before_anything_else(tmp_path: Path) -> None:
    empty = new_home(tmp_path / "empty")
    with pytest.raises(GpgError, match="no secret key"):
        resolve_decryption(EncryptionConfig(gnupghome=empty), dict(os.environ))
    with pytest.raises(GpgError, match="does not exist"):
        resolve_decryption(EncryptionConfig(gnupghome=tmp_path / "none"), dict(os.environ))


def test_symmetric_archive_with_the_passphrase_file(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    home = tmp_path / "gnupghome"
    config = EncryptionConfig(passphrase_file=secret, gnupghome=home)
    decryption = resolve_decryption(config, dict(os.environ))
    import subprocess

    ciphertext = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase-file",
            str(secret),
            "--symmetric",
            "--no-symkey-cache",
        ],
        input=tar_bytes(GOOD),
        capture_output=True,
        check=True,
    ).stdout
    download = tmp_path / "download.tar.gpg"
    download.write_bytes(ciphertext)
    into = tmp_path / "into"
    into.mkdir()
    try:
        assert run(download, into, decryption) == ["photos"]
    finally:
        kill_agent(home)


def test_killed_mid_stream_leaves_nothing(
    tmp_path: Path, gnupg_home: GnupgHome, decryption: Decryption
) -> None:
    big = [("photos/first.bin", os.urandom(4 * MIB)), ("photos/second.bin", os.urandom(4 * MIB))]
    ciphertext = encrypt(tar_bytes(big), gnupg_home)
    fifo = tmp_path / "download.fifo"
    os.mkfifo(fifo)
    into = tmp_path / "into"
    into.mkdir()
    job = Extraction(fifo, into, decryption, tar=TAR, overwrite=False)
    runner = threading.Thread(target=job.run)
    runner.start()
    with fifo.open("wb") as feed:
        feed.write(ciphertext[: len(ciphertext) * 3 // 4])  # the first file is written
        feed.flush()
        deadline = time.monotonic() + 20
        while not list(into.glob(f"{TEMP_PREFIX}*/photos/first.bin")):
            assert time.monotonic() < deadline, "tar never started extracting"
            time.sleep(0.02)
        job.kill()  # what Ctrl-C does
        runner.join(timeout=30)
    assert not runner.is_alive()
    with pytest.raises(Exception):  # noqa: B017 - the cancellation says why
        job.outcome()
    assert leftovers(into) == []
