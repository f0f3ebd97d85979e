"""gpg for restores: check up front that decryption can work, then decrypt a stream.

Decryption uses the ``[encryption]`` settings: with ``passphrase_file`` the archive
was encrypted symmetrically and the passphrase goes to gpg on a pipe (never on a
command line, never cached by gpg-agent: ``--no-symkey-cache``); otherwise gpg
uses the secret keys in GNUPGHOME (``encryption.gnupghome``, else ``$GNUPGHOME``,
else ``~/.gnupg``). A secret key protected by a passphrase asks through
gpg-agent's pinentry, as ``gpg -d`` would.

:func:`resolve_decryption` runs before any retrieval is requested, so that a
missing gpg, key or passphrase never costs a retrieval fee.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from aglacier.config import EncryptionConfig, home_dir
from aglacier.errors import GpgError
from aglacier.staging.gpg import Encryption, StreamingGPG, find_gpg, read_passphrase

_FAILURE_WORDS = ("DECRYPTION_FAILED", "BADMDC", "NO_SECKEY", "ERROR", "FAILURE")

# python-gnupg logs "gpg returned a non-zero error code" as a warning, which
# Python's last-resort handler would print: our own error says what gpg said.
logging.getLogger("gnupg").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Decryption:
    """Checked decryption settings; ``passphrase`` only for symmetric archives."""

    gpg_binary: str
    gnupghome: Path
    passphrase: str | None = field(default=None, repr=False)

    def gpg_args(self) -> list[str]:
        """gpg options: never the network, never a cached passphrase."""
        args = ["--no-auto-key-locate", "--no-auto-key-retrieve"]
        return [*args, "--no-symkey-cache"] if self.passphrase is not None else args


def resolve_decryption(cfg: EncryptionConfig, env: Mapping[str, str]) -> Decryption:
    """Check gpg and the passphrase file or the secret keys; raise :class:`GpgError`.

    Blocking (runs gpg): call it from a worker thread in async code.
    """
    binary = find_gpg(env)
    home = cfg.gnupghome or _env_gnupghome(env) or home_dir(env) / ".gnupg"
    if cfg.passphrase_file is not None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Decryption(binary, home, read_passphrase(cfg.passphrase_file))
    if not home.is_dir():
        raise GpgError(
            f"GNUPGHOME {home} does not exist: no secret key to decrypt with",
            hint="import the backup's secret key (gpg --import), or set "
            "encryption.passphrase_file for an archive encrypted with a passphrase",
        )
    if not _has_secret_key(binary, home):
        raise GpgError(
            f"there is no secret key in GNUPGHOME {home}: decrypting needs the secret key "
            "of a recipient the archive was encrypted to",
            hint=f"gpg --homedir {home} --import SECRET-KEY-FILE",
        )
    return Decryption(binary, home)


def _env_gnupghome(env: Mapping[str, str]) -> Path | None:
    named = env.get("GNUPGHOME", "")
    return Path(named).absolute() if named else None


def _has_secret_key(binary: str, home: Path) -> bool:
    command = [
        binary,
        "--homedir",
        str(home),
        "--batch",
        "--no-tty",
        "--with-colons",
        "--list-secret-keys",
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GpgError(f"cannot list gpg secret keys: {exc}") from None
    return any(line.startswith(b"sec:") for line in done.stdout.splitlines())


class DecryptingGPG(StreamingGPG):
    """A :class:`StreamingGPG` (own session, 1 MiB pipes, :meth:`kill`) that decrypts."""

    def __init__(self, decryption: Decryption) -> None:
        # StreamingGPG reads only gpg_binary and gnupghome from its settings.
        super().__init__(cast(Encryption, decryption))
        self._decryption = decryption

    def decrypt(self, source: Any) -> Any:
        """Decrypt ``source`` (a readable binary file); ``on_data`` takes the plaintext.

        Returns python-gnupg's result; raises ``OSError`` when gpg stops reading.
        """
        self.result = None
        return self.decrypt_file(
            source,
            passphrase=self._decryption.passphrase,
            extra_args=self._decryption.gpg_args(),
        )

    def decrypt_failure(self) -> GpgError:
        """A one-line :class:`GpgError`: gpg's status and its last message."""
        result = self.result
        returncode = getattr(result, "returncode", None)
        lines = str(getattr(result, "stderr", "") or "").splitlines()
        said = [line for line in lines if line.startswith("gpg: ")]
        status = [
            line.removeprefix("[GNUPG:] ")
            for line in lines
            if line.startswith("[GNUPG:] ") and any(word in line for word in _FAILURE_WORDS)
        ]
        if returncode is not None and returncode < 0:
            what = f"gpg was killed by signal {-returncode} while decrypting"
        else:
            summary = getattr(result, "status", "") or "no status"
            what = f"gpg could not decrypt the archive ({summary}, exit status {returncode})"
        return GpgError("; ".join([what, *status[-1:], *said[-1:]]))


def decrypted_ok(result: Any) -> bool:
    """Whether python-gnupg's result says the whole stream decrypted and checked out."""
    return bool(getattr(result, "ok", False)) and getattr(result, "returncode", 1) == 0
