"""The in-process handle: clean start and stop, no leaked threads or ports."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.vault_emulator import VaultEmulator
from tests.vault_emulator.testing import glacier_client


def _raw_get(endpoint_url: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    url = urlsplit(endpoint_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_stop_leaves_no_thread_and_frees_the_port(data_dir: Path) -> None:
    before = set(threading.enumerate())
    emulator = VaultEmulator(data_dir).start()
    url = urlsplit(emulator.endpoint_url)
    client = glacier_client(emulator.endpoint_url)
    client.create_vault(vaultName="v")
    client.close()
    emulator.stop()
    emulator.stop()  # twice is fine
    assert set(threading.enumerate()) == before
    with pytest.raises(ConnectionRefusedError), socket.create_connection((url.hostname, url.port)):
        pass
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.endpoint_url


def test_start_twice_is_an_error(vault_emulator: VaultEmulator) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        vault_emulator.start()


def test_knobs_need_a_running_emulator(data_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="not running"):
        VaultEmulator(data_dir).forget_upload("x")


def test_startup_failure_is_raised(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(OSError), VaultEmulator(not_a_dir):
        pass


def test_api_version_header_is_required(vault_emulator: VaultEmulator) -> None:
    status, body = _raw_get(vault_emulator.endpoint_url, "/-/vaults", {})
    assert (status, body["code"]) == (400, "MissingParameterValueException")
    status, body = _raw_get(
        vault_emulator.endpoint_url, "/-/vaults", {"x-amz-glacier-version": "2011-01-01"}
    )
    assert (status, body["code"]) == (400, "InvalidParameterValueException")
    status, body = _raw_get(
        vault_emulator.endpoint_url, "/-/vaults", {"x-amz-glacier-version": "2012-06-01"}
    )
    assert (status, body["VaultList"]) == (200, [])
