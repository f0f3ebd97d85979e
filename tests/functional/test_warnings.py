"""Files tar cannot read are warnings: the backup completes and exits with code 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aglacier.errors import ExitCode
from tests.functional.conftest import Cli
from tests.functional.trees import decrypt_and_extract
from tests.gpgkeys import GnupgHome

DROP = "-dac_override,-dac_read_search"


def _without_root_powers(cli: Cli) -> list[str]:
    """A command prefix under which root gets EACCES like anyone else (setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    prefix = ["setpriv", f"--inh-caps={DROP}", f"--bounding-set={DROP}"]
    if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode:
        pytest.skip("running as root and not allowed to drop capabilities")
    return prefix


def test_unreadable_file_is_a_listed_warning_and_exit_1(
    tmp_path: Path, gnupg_home: GnupgHome
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    cli = Cli(tmp_path, gnupg_home, f"file://{dest}")
    prefix = _without_root_powers(cli)
    source = tmp_path / "src"
    source.mkdir()
    (source / "readable.txt").write_text("fine\n")
    (source / "secret.txt").write_text("no\n")
    (source / "secret.txt").chmod(0)
    cli.write_config()
    import sys

    result = subprocess.run(
        [*prefix, sys.executable, "-m", "aglacier", "backup", str(source)],
        env=cli.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.WARNINGS, result.stderr
    assert "secret.txt" in result.stderr and "Traceback" not in result.stderr
    [archive] = [p for p in dest.rglob("*.tar.gpg") if ".uploads" not in p.parts]
    decrypt_and_extract(archive, gnupg_home, tmp_path / "out")
    assert (tmp_path / "out" / "src" / "readable.txt").read_text() == "fine\n"
    log = cli.run("log")
    assert "tar.warning" in log.stdout and "secret.txt" in log.stdout
