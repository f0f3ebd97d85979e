"""``aglacier checksum`` through the real command line, in-process and as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.utils import calculate_tree_hash

from aglacier.cli.main import main
from aglacier.errors import ExitCode

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]
# Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, root obeys file modes like anyone.
DROP_DAC = "-dac_override,-dac_read_search"


def tree_hex(data: bytes) -> str:
    return str(calculate_tree_hash(io.BytesIO(data)))


def s3_reference(data: bytes, part_size: int) -> str:
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)] or [b""]
    digests = b"".join(hashlib.sha256(part).digest() for part in parts)
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{len(parts)}"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, list[str]]:
    """Exit status, stdout, and stderr as lines."""
    status = main(["checksum", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


@pytest.fixture
def data() -> bytes:
    return os.urandom(3 * MiB + 5)


@pytest.fixture
def data_file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "archive.gpg"
    path.write_bytes(data)
    return path


def test_prints_tree_hash_like_sha256sum(
    capsys: pytest.CaptureFixture[str], data: bytes, data_file: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    status, out, err = run_cli(capsys, data_file, empty)
    assert (status, err) == (ExitCode.OK, [])
    assert out == f"{tree_hex(data)}  {data_file}\n{hashlib.sha256(b'').hexdigest()}  {empty}\n"


def test_dash_reads_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status, out, err = run_cli(capsys, "-", "--s3-part-size", "5MiB")
    assert (status, err) == (ExitCode.OK, [])
    assert out == f"{tree_hex(data)}  {s3_reference(data, 5 * MiB)}  -\n"


def test_s3_part_size_adds_the_composite_checksum(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB + 3)
    path = tmp_path / "big"
    path.write_bytes(data)
    status, out, _ = run_cli(capsys, "--s3-part-size", "5", path)  # a bare number is MiB
    assert status == ExitCode.OK
    assert out == f"{tree_hex(data)}  {s3_reference(data, 5 * MiB)}  {path}\n"
    assert s3_reference(data, 5 * MiB).endswith("-3")
    assert run_cli(capsys, "--s3-part-size", "6 MiB", path)[1].split()[1].endswith("-2")


def test_missing_file_is_reported_and_the_others_still_hashed(
    capsys: pytest.CaptureFixture[str], data: bytes, data_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing"
    status, out, err = run_cli(capsys, missing, data_file)
    assert status == ExitCode.SOURCE
    assert ExitCode.SOURCE.value == 8  # the number scripts see
    assert err == [f"aglacier: {missing}: No such file or directory"]
    assert out == f"{tree_hex(data)}  {data_file}\n"


def test_directory_argument(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run_cli(capsys, tmp_path)
    assert (status, out) == (ExitCode.SOURCE, "")
    assert err == [f"aglacier: {tmp_path}: Is a directory"]


@pytest.mark.parametrize("size", ["4MiB", "4", "6GiB", "0", "lots"])
def test_bad_part_size_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], data_file: Path, size: str
) -> None:
    status, out, err = run_cli(capsys, "--s3-part-size", size, data_file)
    assert (status, out) == (ExitCode.USAGE, "")
    assert len(err) == 1
    assert err[0].startswith("aglacier: error: argument --s3-part-size:")
    if size != "lots":
        assert "an S3 part is 5 MiB to 5 GiB" in err[0]


def test_names_are_escaped_like_sha256sum(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    odd = tmp_path / "new\nline\\back"
    odd.write_bytes(b"x")
    status, out, _ = run_cli(capsys, odd)
    escaped = str(odd).replace("\\", "\\\\").replace("\n", "\\n")
    assert status == ExitCode.OK
    assert out == f"\\{hashlib.sha256(b'x').hexdigest()}  {escaped}\n"


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["checksum", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "tree hash" in help_text
    assert "--s3-part-size" in help_text
    assert "aglacier checksum backup.tar.gpg" in help_text


# --- as a separate process --------------------------------------------------------


def run_process(
    *args: str | Path, prefix: list[str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    command = [*(prefix or []), sys.executable, "-m", "aglacier", "checksum", *map(str, args)]
    return subprocess.run(command, input=stdin, capture_output=True, cwd=REPO, timeout=60)


def test_subprocess_output_exit_code_and_no_traceback(
    data: bytes, data_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing"
    done = run_process(data_file, missing, "-", stdin=data)
    assert done.returncode == ExitCode.SOURCE
    assert done.stdout.decode() == f"{tree_hex(data)}  {data_file}\n{tree_hex(data)}  -\n"
    assert done.stderr.decode() == f"aglacier: {missing}: No such file or directory\n"


def _without_dac_override() -> list[str]:
    """A command prefix under which a mode-000 file is unreadable, even for root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    prefix = [setpriv, f"--inh-caps={DROP_DAC}", f"--bounding-set={DROP_DAC}"]
    if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode:
        pytest.skip("running as root and setpriv may not drop capabilities here")
    return prefix


def test_unreadable_file(data_file: Path, tmp_path: Path) -> None:
    # As root, chmod 000 alone proves nothing (root reads anything), so the CLI
    # runs without the capabilities that bypass file modes: a real EACCES.
    prefix = _without_dac_override()
    locked = tmp_path / "locked"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    done = run_process(locked, data_file, prefix=prefix)
    assert done.returncode == ExitCode.SOURCE
    assert done.stderr.decode() == f"aglacier: {locked}: Permission denied\n"
    assert done.stdout.decode().endswith(f"  {data_file}\n")
