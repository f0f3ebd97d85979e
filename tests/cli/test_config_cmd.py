"""``aglacier config`` through the real command line, in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from aglacier.cli.main import main
from aglacier.config import load_config
from aglacier.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[destination]
url = "s3://my-bucket/backups"
region = "eu-west-1"

[encryption]
recipients = ["Mike and Martha Backup Archive"]

[upload]
part_size = 8
"""


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, list[str]]:
    """Exit status, stdout, and stderr as lines."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


@pytest.fixture
def config_file(home: Path) -> Path:
    """A file at the default location (HOME is the conftest's throwaway one)."""
    path = home / ".config/aglacier/config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(CONFIG)
    return path


def row(out: str, key: str) -> tuple[str, str]:
    """The ``key = value`` text of a line of `config show` and its origin comment."""
    (line,) = [line for line in out.splitlines() if line.startswith(f"{key} = ")]
    text, origin = line.split("  # ")
    return text.rstrip(), origin


def test_show_prints_values_and_origins(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    status, out, err = run_cli(capsys, "config", "show", "--to", "glacier://vault", "-j", "8")
    assert (status, err) == (ExitCode.OK, [])
    assert row(out, "url") == ('url = "glacier://vault"', "flag --to")
    assert row(out, "region") == ('region = "eu-west-1"', str(config_file))
    assert row(out, "part_size") == ('part_size = "8MiB"', str(config_file))
    assert row(out, "concurrency") == ("concurrency = 8", "flag --concurrency")
    assert row(out, "storage_class") == ('storage_class = "DEEP_ARCHIVE"', "default")
    assert "# profile is not set" in out
    assert f"# config file: {config_file}  (default; exists)" in out


def test_show_output_is_a_config_file_that_gives_the_same_config(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    status, out, _ = run_cli(capsys, "config", "show", "--min-interval", "1d2h3m4s")
    assert status == ExitCode.OK
    tomllib.loads(out)  # valid TOML, comments included
    copy = tmp_path / "copy.toml"
    copy.write_text(out)
    env = dict(os.environ)
    original, reloaded = load_config(None, env), load_config(copy, env)
    assert reloaded.destination == original.destination
    assert reloaded.encryption == original.encryption
    assert reloaded.upload == original.upload
    assert reloaded.backup.min_interval.total_seconds() == 93784
    assert reloaded.backup.spool_dir == original.backup.spool_dir


def test_show_json(capsys: pytest.CaptureFixture[str], config_file: Path, home: Path) -> None:
    status, out, _ = run_cli(capsys, "config", "show", "--json", "--recipient", "a", "-b", "16")
    assert status == ExitCode.OK
    data = json.loads(out)
    assert data["file"] == {"path": str(config_file), "origin": "default", "exists": True}
    assert data["state_dir"] == str(home / ".local/state/aglacier")
    config = data["config"]
    assert config["destination"]["url"] == {
        "value": "s3://my-bucket/backups",
        "origin": str(config_file),
    }
    assert config["encryption"]["recipients"] == {"value": ["a"], "origin": "flag --recipient"}
    assert config["upload"]["part_size"] == {"value": "16MiB", "origin": "flag --part-size"}
    assert config["destination"]["profile"] == {"value": None, "origin": "default"}
    assert list(config) == ["destination", "encryption", "upload", "backup"]


def test_xdg_and_aglacier_config_variables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    named = tmp_path / "named.toml"
    named.write_text("[upload]\nconcurrency = 3\n")
    monkeypatch.setenv("AGLACIER_CONFIG", str(named))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AGLACIER_STATE_DIR", str(tmp_path / "state"))
    status, out, _ = run_cli(capsys, "config", "show", "--json")
    assert status == ExitCode.OK
    data = json.loads(out)
    assert data["file"]["origin"] == "env AGLACIER_CONFIG"
    assert data["state_dir"] == str(tmp_path / "state")
    assert data["config"]["upload"]["concurrency"] == {"value": 3, "origin": str(named)}
    assert data["config"]["backup"]["spool_dir"] == {
        "value": str(tmp_path / "cache/aglacier/spool"),
        "origin": "default ($XDG_CACHE_HOME)",
    }


def test_bad_config_is_one_line_and_exit_code_4(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    config_file.write_text('[upload]\nconcurrency = "four"\n')
    status, out, err = run_cli(capsys, "config", "show")
    assert status == ExitCode.CONFIG
    assert out == ""
    assert err == [
        "aglacier: error: ~/.config/aglacier/config.toml: upload.concurrency: "
        'must be a whole number from 1 to 64, not "four"'
    ]


def test_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "config", "show", "--to", "s3://No")
    assert status == ExitCode.USAGE
    assert err == [
        'aglacier: error: flag --to: destination.url: "s3://No": bucket name "No" '
        "must be 3 to 63 characters long"
    ]


def test_missing_explicit_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    status, _, err = run_cli(capsys, "config", "show", "--config", str(missing))
    assert status == ExitCode.CONFIG
    assert err == [f"aglacier: error: {missing}: no such file (named by flag --config)"]


def test_global_config_flag_before_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[upload]\nconcurrency = 9\n")
    status, out, _ = run_cli(capsys, "--config", str(path), "config", "show")
    assert status == ExitCode.OK
    assert row(out, "concurrency") == ("concurrency = 9", str(path))


def test_path(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    status, out, _ = run_cli(capsys, "config", "path")
    assert status == ExitCode.OK
    assert out.splitlines() == [
        f"config file: {home}/.config/aglacier/config.toml  "
        "(default; does not exist: built-in defaults apply)",
        f"state directory: {home}/.local/state/aglacier",
    ]


def test_path_does_not_read_a_broken_file(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    config_file.write_text("this is not TOML")
    status, out, _ = run_cli(capsys, "config", "path", "--json")
    assert status == ExitCode.OK
    assert json.loads(out)["file"] == {
        "path": str(config_file),
        "origin": "default",
        "exists": True,
    }


def test_bare_config_prints_help_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "config")
    assert status == ExitCode.USAGE
    assert out == ""
    assert any("show" in line and "origin" in line for line in err)


def test_show_help_lists_the_override_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config", "show", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--to URL", "--storage-class CLASS", "-b SIZE, --part-size SIZE", "--json"):
        assert flag in out
    assert "[upload.concurrency]" in out


def test_subprocess_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[upload]\nconcurrency = 4\n[backup\n")
    env = dict(os.environ, AGLACIER_CONFIG=str(bad))
    result = subprocess.run(
        [sys.executable, "-m", "aglacier", "config", "show"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"aglacier: error: {bad}: line 3, column 8: "
        "not valid TOML: Expected ']' at the end of a table declaration"
    ]
