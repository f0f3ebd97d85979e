"""Fixtures: an isolated AWS environment, a running emulator, a boto3 client, a vault."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vault_emulator import VaultEmulator
from tests.vault_emulator.testing import glacier_client, isolate_aws_environment, running_emulator


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No test may read the machine's AWS configuration or reach real AWS.
    isolate_aws_environment(monkeypatch, tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The emulator's data folder."""
    return tmp_path / "glacier"


@pytest.fixture
def vault_emulator(data_dir: Path) -> Iterator[VaultEmulator]:
    """A running emulator on 127.0.0.1 with job delay 0."""
    yield from running_emulator(data_dir)


@pytest.fixture
def glacier(vault_emulator: VaultEmulator) -> Iterator[Any]:
    """A boto3 Glacier client for the emulator that never retries."""
    client = glacier_client(vault_emulator.endpoint_url)
    yield client
    client.close()


@pytest.fixture
def vault(glacier: Any) -> str:
    """The name of a fresh vault."""
    glacier.create_vault(vaultName="test-vault")
    return "test-vault"
