"""``python -m tests.vault_emulator`` run by hand (here: as a subprocess)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.vault_emulator.testing import admin_call, glacier_client

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_module_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "cli-data"
    args = [sys.executable, "-m", "tests.vault_emulator", "--port", "0", "--data", str(data)]
    args += ["--job-delay", "0"]
    with subprocess.Popen(
        args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            client = glacier_client(url)
            client.create_vault(vaultName="by-hand")
            assert client.list_vaults()["VaultList"][0]["VaultName"] == "by-hand"
            client.close()
            status, counters = admin_call(url, "counters")
            assert status == 200
            assert counters == {
                "requests": {"CreateVault": 1, "ListVaults": 1},
                "part_uploads": {},
                "parts_stored": {},
                "held": 0,
            }
        finally:
            server.send_signal(signal.SIGTERM)
            _, errors = server.communicate(timeout=10)
    assert server.returncode == 0, errors
    assert (data / "vaults" / "by-hand" / "vault.json").is_file()
