"""Fixtures of the vault emulator's end-to-end tests: crashes, faults, interrupts."""

from __future__ import annotations

from pathlib import Path

import pytest

from aglacier.units import MiB
from tests.functional.conftest import Cli
from tests.functional.e2e import VAULT
from tests.functional.trees import make_source_tree
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import VaultEmulator


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """About 5 MiB: six parts of 1 MiB."""
    return make_source_tree(tmp_path / "src", big=5 * MiB)


@pytest.fixture
def cli(tmp_path: Path, gnupg_home: GnupgHome, vault: VaultEmulator) -> Cli:
    """The CLI backing up to the emulator's vault in 1 MiB parts, four at a time."""
    return Cli(
        tmp_path, gnupg_home, f"glacier://{VAULT}", endpoint_url=vault.endpoint_url,
        part_size="1MiB", concurrency=4,
    )  # fmt: skip
