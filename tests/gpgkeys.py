"""Throwaway GnuPG homes with keys made on the spot, for tests that run real gpg.

Kept apart from any conftest so that any test package can use it. Keys are
ed25519/cv25519 without a passphrase: generating one takes ~50 ms. gpg starts a
gpg-agent per home; :func:`kill_agent` ends it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from aglacier.staging.gpg import kill_gpg_agent


@dataclass(frozen=True)
class GnupgHome:
    """A GNUPGHOME holding one key pair (no passphrase) for ``name``."""

    home: Path
    fingerprint: str
    name: str  # the user id, e.g. "aglacier test <test@example.invalid>"


def new_home(path: Path) -> Path:
    """Create an empty GNUPGHOME (mode 0700, as gpg wants) at ``path``."""
    path.mkdir(mode=0o700, parents=True)
    return path


def generate_key(
    home: Path,
    name: str,
    *,
    usage: str = "default",
    algo: str = "future-default",
    expire: str = "never",
    faked_time: str | None = None,
) -> str:
    """Make a key pair without a passphrase in ``home``; return its fingerprint.

    ``usage="sign"`` with ``algo="ed25519"`` makes a key that cannot encrypt;
    ``faked_time`` (gpg's ``--faked-system-time``, e.g. ``"20200101T000000"``)
    with ``expire="1d"`` makes a key that has expired.
    """
    command = ["gpg", "--homedir", str(home), "--batch", "--passphrase", ""]
    if faked_time is not None:
        command += ["--faked-system-time", faked_time]
    command += ["--quick-gen-key", name, algo, usage, expire]
    subprocess.run(command, check=True, capture_output=True)
    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "--list-keys", "--", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")]
    return fingerprints[0]  # the primary key's comes first


def make_gnupg_home(path: Path, name: str = "aglacier test <test@example.invalid>") -> GnupgHome:
    """A new home at ``path`` with one encryption-capable key for ``name``."""
    home = new_home(path)
    return GnupgHome(home, generate_key(home, name), name)


def kill_agent(home: Path) -> None:
    """End the gpg-agent that gpg started for ``home``."""
    kill_gpg_agent(home)
