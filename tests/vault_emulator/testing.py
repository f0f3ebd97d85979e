"""Helpers for tests in any folder: a started emulator and a boto3 client isolated from the
machine's AWS configuration.

A conftest can do::

    @pytest.fixture
    def vault_emulator(tmp_path, monkeypatch):
        isolate_aws_environment(monkeypatch, tmp_path)
        yield from running_emulator(tmp_path / "glacier")
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .handle import VaultEmulator


def running_emulator(data_dir: Path, *, job_delay: float = 0.0) -> Iterator[VaultEmulator]:
    """Yield a started emulator over ``data_dir``; stop it (and its thread) afterwards."""
    with VaultEmulator(data_dir, job_delay=job_delay) as emulator:
        yield emulator


def isolate_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make botocore ignore any real AWS config and use dummy credentials."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def glacier_client(endpoint_url: str, *, retries: int = 0, **config: Any) -> Any:
    """A boto3 Glacier client for the emulator; ``retries`` retries after the first try.

    ``config`` goes to ``botocore.config.Config`` and overrides the defaults set here.
    """
    import boto3
    from botocore.config import Config

    settings: dict[str, Any] = {
        "retries": {"total_max_attempts": retries + 1, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 30,
    }
    return boto3.client(
        "glacier",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**(settings | config)),
    )


def admin_call(endpoint_url: str, path: str, body: object = None) -> tuple[int, object]:
    """Call an admin endpoint (``path`` like "counters"); POST when there is a body.

    ``body`` may be raw bytes or anything JSON-serialisable. Returns (status, parsed JSON).
    """
    url = urlsplit(endpoint_url)
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        connection.request("GET" if raw is None else "POST", f"/_emulator/{path}", body=raw)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()
