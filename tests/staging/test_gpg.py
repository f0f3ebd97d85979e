"""resolve_encryption against real gpg: keys, recipients, passphrase files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aglacier.config import EncryptionConfig
from aglacier.errors import ExitCode, GpgError
from aglacier.staging import Encryption, resolve_encryption
from tests.gpgkeys import GnupgHome, generate_key, kill_agent, new_home


@pytest.fixture(scope="module")
def awkward_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two keys that share a name, a sign-only key and an expired one."""
    home = new_home(tmp_path_factory.mktemp("gnupg-awkward") / "home")
    generate_key(home, "Alice One <alice1@example.invalid>")
    generate_key(home, "Alice Two <alice2@example.invalid>")
    generate_key(home, "Signer <signer@example.invalid>", algo="ed25519", usage="sign")
    generate_key(home, "Old <old@example.invalid>", expire="1d", faked_time="20200101T000000")
    try:
        yield home
    finally:
        kill_agent(home)


def _resolve(home: Path, *recipients: str) -> Encryption:
    return resolve_encryption(EncryptionConfig(recipients=recipients, gnupghome=home), os.environ)


def test_a_recipient_resolves_to_its_fingerprint(gnupg_home: GnupgHome) -> None:
    by_email = _resolve(gnupg_home.home, "test@example.invalid")
    assert by_email.fingerprints == (gnupg_home.fingerprint,)
    assert not by_email.symmetric
    assert _resolve(gnupg_home.home, gnupg_home.fingerprint) == by_email
    args = by_email.gpg_args()
    assert args[:2] == ["--compress-algo", "none"]
    assert {"--no-auto-key-locate", "--no-encrypt-to", "--trust-model"} <= set(args)


def test_gnupghome_comes_from_the_environment(gnupg_home: GnupgHome) -> None:
    config = EncryptionConfig(recipients=("test@example.invalid",))
    env = {**os.environ, "GNUPGHOME": str(gnupg_home.home)}
    assert resolve_encryption(config, env).gnupghome == gnupg_home.home


def test_unknown_recipient(gnupg_home: GnupgHome) -> None:
    with pytest.raises(GpgError) as caught:
        _resolve(gnupg_home.home, "nobody@example.invalid")
    assert caught.value.exit_code == ExitCode.GPG
    assert int(caught.value.exit_code) == 7
    assert str(caught.value).startswith(
        "no gpg key for recipient 'nobody@example.invalid' in GNUPGHOME"
    )
    assert "--list-keys" in str(caught.value)


def test_ambiguous_recipient_lists_the_candidates(awkward_home: Path) -> None:
    with pytest.raises(GpgError, match="matches 2 gpg keys") as caught:
        _resolve(awkward_home, "Alice")
    assert "alice1@example.invalid" in str(caught.value)
    assert "alice2@example.invalid" in str(caught.value)
    assert caught.value.hint is not None and "fingerprint" in caught.value.hint


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        ("signer@example.invalid", "no valid, unexpired encryption subkey"),
        ("old@example.invalid", "the key has expired"),
    ],
)
def test_keys_that_cannot_encrypt(awkward_home: Path, recipient: str, reason: str) -> None:
    with pytest.raises(GpgError, match="cannot encrypt") as caught:
        _resolve(awkward_home, recipient)
    assert reason in str(caught.value)


def test_missing_gnupghome(tmp_path: Path) -> None:
    with pytest.raises(GpgError, match="does not exist"):
        _resolve(tmp_path / "none", "test@example.invalid")


def test_missing_gpg_says_to_install_it(gnupg_home: GnupgHome, tmp_path: Path) -> None:
    config = EncryptionConfig(recipients=("x",), gnupghome=gnupg_home.home)
    with pytest.raises(GpgError, match="gpg is not installed") as caught:
        resolve_encryption(config, {**os.environ, "PATH": str(tmp_path)})
    assert caught.value.hint is not None and "install GnuPG" in caught.value.hint


def test_nothing_configured() -> None:
    with pytest.raises(GpgError, match="no encryption configured"):
        resolve_encryption(EncryptionConfig(), os.environ)


# --- symmetric ----------------------------------------------------------------------


def _passphrase_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def _symmetric(path: Path, home: Path) -> Encryption:
    config = EncryptionConfig(passphrase_file=path, gnupghome=home)
    return resolve_encryption(config, os.environ)


def test_passphrase_is_the_first_line_kept_out_of_repr(tmp_path: Path) -> None:
    secret = "corrèct horse\u2603".encode()
    path = _passphrase_file(tmp_path / "pass", secret + b"\r\nsecond line\n")
    encryption = _symmetric(path, tmp_path / "gnupg")
    assert encryption.symmetric
    assert encryption.passphrase is not None
    assert encryption.passphrase.encode("latin-1") == secret  # gpg gets the exact bytes
    assert "corr" not in repr(encryption)
    assert "--no-symkey-cache" in encryption.gpg_args()
    assert (tmp_path / "gnupg").is_dir()  # made for gpg, as gpg would


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (b"", 0o600, "is empty"),
        (b"\nsecret\n", 0o600, "is empty"),
        (b"secret\n", 0o644, "accessible by other users"),
        (b"secret\n", 0o640, "accessible by other users"),
    ],
)
def test_bad_passphrase_files(tmp_path: Path, content: bytes, mode: int, message: str) -> None:
    path = _passphrase_file(tmp_path / "pass", content, mode)
    with pytest.raises(GpgError, match=message) as caught:
        _symmetric(path, tmp_path)
    assert caught.value.exit_code == ExitCode.GPG


def test_missing_passphrase_file(tmp_path: Path) -> None:
    with pytest.raises(GpgError, match="cannot read the passphrase file"):
        _symmetric(tmp_path / "none", tmp_path)
