"""Fixtures every test gets: an environment that cannot reach a real account or home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gpgkeys import GnupgHome, kill_agent, make_gnupg_home


@pytest.fixture(autouse=True)
def _hermetic_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads the developer's config, state, AWS credentials or metadata service."""
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("AWS_", "AGLACIER_", "XDG_")) or name == "GNUPGHOME":
            del os.environ[name]
    os.environ.update(
        {
            "HOME": str(home),
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def anyio_backend() -> str:
    """aglacier runs on anyio's asyncio backend only."""
    return "asyncio"


@pytest.fixture
def home() -> Path:
    """The throwaway HOME of this test."""
    return Path(os.environ["HOME"])


@pytest.fixture(scope="session")
def gnupg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnupgHome]:
    """A throwaway GNUPGHOME with one key pair (no passphrase), shared by the session."""
    home = make_gnupg_home(tmp_path_factory.mktemp("gnupg") / "home")
    try:
        yield home
    finally:
        kill_agent(home.home)
