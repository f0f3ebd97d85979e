"""The README's first two commands are the project's front door: keep them working."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALL = "python3 -m venv .venv && .venv/bin/pip install . && "


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.*?)\n```", text, flags=re.DOTALL)


def test_readme_opens_with_install_and_run_then_tests() -> None:
    first, second = _commands()[:2]
    assert first.startswith(INSTALL)
    assert "aglacier backup" in first and "aglacier list" in first
    assert second == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    )
    ci = (REPO / ".ci" / "run").read_text()
    assert second in ci


def test_quick_start_backs_up_and_lists(tmp_path: Path) -> None:
    """The first command after its install step, run with this interpreter in a new HOME."""
    command = _commands()[0].removeprefix(INSTALL)
    command = command.replace(".venv/bin/aglacier", f"{sys.executable} -m aglacier")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"{REPO}/docs" in result.stdout  # the listed archive's source
    archives = list((home / ".local/share/aglacier/archives").rglob("*.tar.gpg"))
    assert len(archives) == 1
    # And it comes back with plain gpg and tar, as the README says.
    passphrase = home / ".config/aglacier/passphrase"
    pipeline = 'gpg -d --batch --quiet --passphrase-file "$1" "$2" | tar -t'
    listing = subprocess.run(
        ["bash", "-c", pipeline, "restore", str(passphrase), str(archives[0])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "docs/design.md" in listing.stdout.splitlines()
