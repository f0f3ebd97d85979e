"""Everything gpg: check the keys or the passphrase up front, then encrypt a stream.

:func:`resolve_encryption` runs before anything is started, so that a missing gpg,
an unknown or ambiguous recipient, an expired key or an unreadable passphrase file
stops a backup before tar reads a byte (python-gnupg turns an unknown recipient
with a large input into a ``BrokenPipeError`` instead of an error result; DESIGN §5).

Encryption arguments, and why:

- ``--compress-algo none``: gpg's default ZLIB runs at ~40 MB/s against ~580 MB/s
  without it (DESIGN §6), and home data worth backing up (photos, video, archives)
  is mostly compressed already.
- ``--no-auto-key-locate``: gpg never goes to the network (WKD, keyservers) for a key.
- ``--trust-model always``: keys in a backup user's keyring are often imported but
  never certified (an offline backup key), and gpg in batch mode refuses such keys.
  It applies only to the fingerprints that :func:`resolve_encryption` found, each
  checked here for a usable, unexpired, unrevoked encryption subkey:
  ``--no-encrypt-to`` keeps gpg.conf's ``encrypt-to`` keys (never checked) out;
  list such a key in ``encryption.recipients`` to encrypt to it as well.
- ``--no-symkey-cache`` (symmetric mode): gpg-agent would otherwise cache the backup
  passphrase after every run.
- The cipher is gpg's choice from the recipients' preferences (AES256 for keys made
  by gpg 2.2); symmetric mode asks for AES256 explicitly.

The passphrase never appears on a command line: python-gnupg writes it to gpg's
standard input ahead of the data (``--passphrase-fd 0`` with loopback pinentry).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast

import gnupg

from aglacier.config import EncryptionConfig, home_dir
from aglacier.errors import GpgError
from aglacier.staging.pipes import PIPE_SIZE, PipeReader, enlarge_pipe

MIN_GPG_VERSION = (2, 2, 7)  # --no-symkey-cache, loopback pinentry
SYMMETRIC_CIPHER = "AES256"
_FAILURE_STATUS_RE = re.compile(r"\[GNUPG:\] (FAILURE|ERROR|INV_RECP|KEYEXPIRED|NO_PUBKEY) ")
_BAD_VALIDITY = frozenset("rei")  # revoked, expired, invalid
_INSTALL_HINT = "install GnuPG 2.2 or later (Debian/Ubuntu: apt install gnupg)"


@dataclass(frozen=True)
class Encryption:
    """Validated encryption settings: what :func:`aglacier.staging.stage` needs.

    Exactly one of ``fingerprints`` (public-key mode) and ``passphrase``
    (symmetric mode) is set. ``passphrase`` is the first line of the passphrase
    file decoded as Latin-1, so that python-gnupg (which encodes Latin-1) hands
    gpg its exact bytes, whatever their encoding; it is left out of ``repr``.
    """

    gpg_binary: str
    gnupghome: Path
    fingerprints: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if bool(self.fingerprints) == (self.passphrase is not None):
            raise ValueError("Encryption needs either fingerprints or a passphrase")

    @property
    def symmetric(self) -> bool:
        """True when encrypting with a passphrase rather than to keys."""
        return self.passphrase is not None

    def gpg_args(self) -> list[str]:
        """gpg options besides the recipients (see the module docstring for why)."""
        args = ["--compress-algo", "none", "--no-auto-key-locate"]
        if self.symmetric:
            return [*args, "--no-symkey-cache"]
        return [*args, "--no-encrypt-to", "--trust-model", "always"]


def resolve_encryption(cfg: EncryptionConfig, env: Mapping[str, str]) -> Encryption:
    """Check gpg, the GNUPGHOME and the keys or passphrase; raise :class:`GpgError`.

    Blocking (runs ``gpg`` a few times): call it from a worker thread in async code.
    GNUPGHOME is ``cfg.gnupghome``, else ``$GNUPGHOME``, else ``~/.gnupg``.
    """
    if cfg.mode is None:
        raise GpgError(
            "no encryption configured",
            hint="set encryption.recipients or encryption.passphrase_file",
        )
    binary = find_gpg(env)
    home = _gnupghome(cfg, env)
    if cfg.passphrase_file is not None:
        passphrase = read_passphrase(cfg.passphrase_file)
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)  # as gpg itself would
        except OSError as exc:
            raise GpgError(f"cannot create GNUPGHOME {home}: {exc.strerror}") from None
        return Encryption(binary, home, passphrase=passphrase)
    if not home.is_dir():
        raise GpgError(f"GNUPGHOME {home} does not exist: no gpg keys to encrypt to")
    fingerprints = tuple(_fingerprint_for(binary, home, name) for name in cfg.recipients)
    return Encryption(binary, home, fingerprints=tuple(dict.fromkeys(fingerprints)))


def find_gpg(env: Mapping[str, str]) -> str:
    """The absolute path of a gpg >= 2.2.7 on ``$PATH`` (``gpg``, else ``gpg2``)."""
    path = env.get("PATH", os.defpath)
    binary = shutil.which("gpg", path=path) or shutil.which("gpg2", path=path)
    if binary is None:
        raise GpgError("gpg is not installed (not found on PATH)", hint=_INSTALL_HINT)
    version = _gpg_version(binary)
    if version < MIN_GPG_VERSION:
        shown = ".".join(map(str, version))
        raise GpgError(f"{binary} is GnuPG {shown}, too old", hint=_INSTALL_HINT)
    return binary


def _gpg_version(binary: str) -> tuple[int, ...]:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise GpgError(f"cannot run {binary} --version: {exc}", hint=_INSTALL_HINT) from None
    match = re.search(r"\(GnuPG[^)]*\) (\d+)\.(\d+)\.(\d+)", out)
    if match is None:
        raise GpgError(f"{binary} is not GnuPG: {out.splitlines()[:1]}", hint=_INSTALL_HINT)
    return tuple(int(part) for part in match.groups())


def _gnupghome(cfg: EncryptionConfig, env: Mapping[str, str]) -> Path:
    if cfg.gnupghome is not None:
        return cfg.gnupghome
    named = env.get("GNUPGHOME", "")
    if named:
        return Path(named).absolute()
    return home_dir(env) / ".gnupg"


def read_passphrase(path: Path) -> str:
    """The first line of ``path``, as ``gpg --passphrase-file`` reads it.

    Refused when group or others have any access to the file: like ssh with a
    private key, because this one passphrase opens every backup.
    """
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            line = file.readline()
    except OSError as exc:
        raise GpgError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise GpgError(
            f"the passphrase file {path} is accessible by other users (mode {stat.filemode(mode)})",
            hint=f"chmod 600 {path}",
        )
    passphrase = line.rstrip(b"\r\n")
    if not passphrase:
        raise GpgError(f"the passphrase file {path} is empty (its first line is the passphrase)")
    if b"\r" in passphrase:  # gpg would stop at it; python-gnupg refuses it
        raise GpgError(f"the passphrase in {path} contains a carriage return")
    return passphrase.decode("latin-1")


# --- recipients -------------------------------------------------------------------


@dataclass
class _Key:
    """One ``pub`` record of ``gpg --with-colons --list-keys`` and its subkeys."""

    fingerprint: str = ""
    user_ids: list[str] = field(default_factory=list)
    usable_encryption: bool = False  # a valid, unexpired subkey (or primary) that encrypts
    problem: str = ""  # why the primary key cannot be used


def _fingerprint_for(binary: str, home: Path, recipient: str) -> str:
    """The fingerprint of the one usable key that ``recipient`` names in ``home``."""
    keys = _list_keys(binary, home, recipient)
    if not keys:
        raise GpgError(
            f"no gpg key for recipient {recipient!r} in GNUPGHOME {home} "
            f"(gpg --homedir {home} --list-keys)"
        )
    if len(keys) > 1:
        candidates = "; ".join(f"{key.fingerprint} {_first_uid(key)}" for key in keys)
        raise GpgError(
            f"recipient {recipient!r} matches {len(keys)} gpg keys: {candidates}",
            hint="name the key by its fingerprint in encryption.recipients",
        )
    key = keys[0]
    if key.problem or not key.usable_encryption:
        reason = key.problem or "it has no valid, unexpired encryption subkey"
        raise GpgError(
            f"gpg key {key.fingerprint} ({_first_uid(key)}) for recipient {recipient!r} "
            f"cannot encrypt: {reason}"
        )
    return key.fingerprint


def _first_uid(key: _Key) -> str:
    return key.user_ids[0] if key.user_ids else "no user id"


def _list_keys(binary: str, home: Path, recipient: str) -> list[_Key]:
    command = [
        binary,
        "--homedir",
        str(home),
        "--batch",
        "--no-tty",
        "--no-auto-key-locate",
        "--no-auto-check-trustdb",
        "--with-colons",
        "--fixed-list-mode",
        "--list-keys",
        "--",
        recipient,
    ]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GpgError(f"cannot list gpg keys: {exc}") from None
    keys = _parse_key_listing(done.stdout.decode("utf-8", "replace"), time.time())
    if not keys and done.returncode != 0 and b"No public key" not in done.stderr:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GpgError(f"gpg --list-keys failed: {message[-1] if message else done.returncode}")
    return keys


def _parse_key_listing(listing: str, now: float) -> list[_Key]:
    """Parse colon records (gpg's doc/DETAILS): pub/sub validity, expiry, capabilities."""
    keys: list[_Key] = []
    last = ""  # the record type that an fpr line belongs to
    for line in listing.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind == "pub" and len(fields) > 11:
            keys.append(_Key(problem=_primary_problem(fields, now)))
            keys[-1].usable_encryption = _encrypts(fields, now)
        elif kind == "sub" and keys and len(fields) > 11:
            keys[-1].usable_encryption |= _encrypts(fields, now)
        elif kind == "uid" and keys and len(fields) > 9:
            keys[-1].user_ids.append(fields[9].replace("\\x3a", ":"))
        elif kind == "fpr" and last == "pub" and len(fields) > 9:
            keys[-1].fingerprint = fields[9]
        if kind != "fpr":
            last = kind
    return keys


def _primary_problem(fields: Sequence[str], now: float) -> str:
    if fields[1] == "r":
        return "the key is revoked"
    if fields[1] == "e" or _expired(fields[6], now):
        return "the key has expired"
    if fields[1] == "i":
        return "the key is invalid"
    if "D" in fields[11]:
        return "the key is disabled"
    return ""


def _encrypts(fields: Sequence[str], now: float) -> bool:
    """A (sub)key record with its own ``e`` capability that is still valid."""
    return "e" in fields[11] and fields[1] not in _BAD_VALIDITY and not _expired(fields[6], now)


def _expired(expires: str, now: float) -> bool:
    # --fixed-list-mode prints seconds since the epoch; empty means never.
    return expires.isdigit() and int(expires) <= now


# --- encrypting -------------------------------------------------------------------


class StreamingGPG(gnupg.GPG):  # type: ignore[misc]  # python-gnupg has no type hints
    """A python-gnupg ``GPG`` for one streaming operation that can be stopped.

    It keeps the gpg process (so :meth:`kill` can end it on Ctrl-C or on a full
    spool) and the result object (so a ``BrokenPipeError`` raised by
    ``encrypt_file`` can still be explained with gpg's status), and gives gpg
    1 MiB pipes. Overrides two internal methods of python-gnupg 0.5.7 (pinned):
    ``_open_subprocess`` and ``_collect_output``.
    """

    def __init__(self, encryption: Encryption) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._killed = False
        self._input: IO[bytes] | None = None
        self.result: Any = None
        try:
            super().__init__(gpgbinary=encryption.gpg_binary, gnupghome=str(encryption.gnupghome))
        except (OSError, ValueError) as exc:  # gpg or the GNUPGHOME went away since checked
            raise GpgError(f"cannot run gpg: {exc}") from None
        self.buffer_size = PIPE_SIZE

    def feed_from(self, stream: IO[bytes]) -> None:
        """Make the next operation's gpg read ``stream`` (a pipe) itself.

        python-gnupg would copy it through Python in a thread of its own; gpg
        reads the pipe directly instead, and python-gnupg is given an empty
        input. ``stream`` is closed here once gpg has it, so that its writer
        gets a broken pipe if gpg dies. A passphrase goes to gpg through a pipe
        of its own, since standard input is taken.
        """
        self._input = stream

    def _open_subprocess(self, args: list[str], passphrase: bool = False) -> Any:
        # python-gnupg's own, plus a session of its own: Ctrl-C reaches only
        # aglacier, which stops gpg itself (see aglacier.staging.tar.spawn_tar).
        command = self.make_args(args, passphrase)
        if self._input is None:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                start_new_session=True,
            )
            enlarge_pipe(process.stdin)
        else:
            process = self._spawn_fed(command, self._input, passphrase)
        enlarge_pipe(process.stdout)
        assert process.stdout is not None
        # python-gnupg only reads and closes it: a PipeReader does both
        process.stdout = cast("IO[bytes]", PipeReader(process.stdout))
        with self._lock:
            self._process = process
            if self._killed:
                process.kill()
        return process

    def _spawn_fed(
        self, command: list[str], stream: IO[bytes], passphrase: bool
    ) -> subprocess.Popen[bytes]:
        secret_read, secret_write = os.pipe()
        try:
            if passphrase:
                at = command.index("--passphrase-fd")
                command[at + 1] = str(secret_read)
            process = subprocess.Popen(
                command,
                stdin=stream.fileno(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(secret_read,) if passphrase else (),
                env=self.env,
                start_new_session=True,
            )
        except BaseException:
            os.close(secret_write)
            raise
        finally:
            os.close(secret_read)
            stream.close()
        # python-gnupg writes the passphrase (if any) here, then closes it.
        process.stdin = os.fdopen(secret_write, "wb", buffering=0)
        return process

    def _collect_output(
        self, process: Any, result: Any, writer: Any = None, stdin: Any = None
    ) -> Any:
        self.result = result
        return super()._collect_output(process, result, writer, stdin)

    def kill(self) -> None:
        """Stop gpg now (idempotent); python-gnupg's threads then see end of file."""
        with self._lock:
            self._killed = True
            if self._process is not None and self._process.returncode is None:
                self._process.kill()

    def failure(self) -> GpgError:
        """A one-line :class:`GpgError`: gpg's exit, its last status and its last message."""
        result = self.result
        returncode = getattr(result, "returncode", None)
        lines = str(getattr(result, "stderr", "") or "").splitlines()
        said = [line for line in lines if line.startswith("gpg: ")]
        status = [line for line in lines if _FAILURE_STATUS_RE.match(line)]
        if returncode is not None and returncode < 0:
            what = f"gpg was killed by signal {-returncode} while encrypting"
        else:
            summary = getattr(result, "status", "") or "no status"
            what = f"gpg failed to encrypt ({summary}, exit status {returncode})"
        details = [*status[-1:], *said[-1:]]
        return GpgError("; ".join([what, *details]))


class ByteSource(Protocol):
    """What python-gnupg reads its input from."""

    def read(self, size: int = -1, /) -> bytes: ...


def encrypt_stream(gpg: StreamingGPG, encryption: Encryption, source: ByteSource) -> Any:
    """Encrypt ``source`` with ``gpg`` (whose ``on_data`` takes the ciphertext).

    Returns python-gnupg's result; raises ``OSError`` (``BrokenPipeError``) when
    gpg stops reading early: the caller turns both into errors.
    """
    gpg.result = None  # so that a failure never shows the previous operation's status
    if encryption.symmetric:
        return gpg.encrypt_file(
            source,
            None,
            symmetric=SYMMETRIC_CIPHER,
            passphrase=encryption.passphrase,
            armor=False,
            extra_args=encryption.gpg_args(),
        )
    return gpg.encrypt_file(
        source, list(encryption.fingerprints), armor=False, extra_args=encryption.gpg_args()
    )


def kill_gpg_agent(gnupghome: Path) -> None:
    """End the gpg-agent (and other daemons) gpg started for ``gnupghome``.

    For tests and throwaway homes: gpg leaves one agent per GNUPGHOME behind.
    """
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None:
        subprocess.run(
            [gpgconf, "--homedir", str(gnupghome), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=30,
        )
