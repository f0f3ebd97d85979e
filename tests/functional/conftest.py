"""Fixtures for end-to-end tests: the real CLI in a subprocess, real gpg, tar and servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Importing aws_servers lowers moto's minimum part size before moto is loaded, and
# makes its session-wide ``moto_s3_endpoint`` fixture available to the tests here.
from tests.backends.aws_servers import moto_s3_endpoint  # noqa: F401 (a fixture)
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Cli:
    """``python -m aglacier`` in a subprocess, with its own state, spool and config."""

    root: Path
    gnupg: GnupgHome
    destination: str
    endpoint_url: str | None = None
    part_size: str = "1MiB"
    concurrency: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    def write_config(self) -> None:
        lines = ["[destination]", f"url = {json.dumps(self.destination)}"]
        if self.endpoint_url:
            lines += [f'endpoint_url = "{self.endpoint_url}"', 'region = "us-east-1"']
        lines += [
            "[encryption]",
            f"recipients = [{json.dumps(self.gnupg.fingerprint)}]",
            f"gnupghome = {json.dumps(str(self.gnupg.home))}",
            "[upload]",
            f'part_size = "{self.part_size}"',
            f"concurrency = {self.concurrency}",
            "[backup]",
            f"spool_dir = {json.dumps(str(self.spool_dir))}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AGLACIER_CONFIG": str(self.config_path),
                "AGLACIER_STATE_DIR": str(self.state_dir),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.write_config()
        return subprocess.Popen(
            [sys.executable, "-m", "aglacier", *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        self.write_config()
        return subprocess.run(
            [sys.executable, "-m", "aglacier", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )

    def json(self, *args: str) -> object:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[VaultEmulator]:
    """The strict vault emulator with one vault, ``backups``."""
    with VaultEmulator(tmp_path / "emulator") as emulator:
        from tests.vault_emulator.testing import glacier_client

        glacier_client(emulator.endpoint_url).create_vault(vaultName="backups")
        yield emulator
