"""Exit codes are API: unique, documented, and the only way errors leave the CLI."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import aglacier.errors as errors_module
from aglacier.cli.main import main
from aglacier.errors import AglacierError, ExitCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`\s*\|")


def _documented() -> dict[int, str]:
    rows = [ROW.match(line) for line in DOC.read_text().splitlines()]
    return {int(m.group(1)): m.group(2) for m in rows if m}


def test_codes_are_unique() -> None:
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values))


def test_every_code_is_documented_with_its_name() -> None:
    assert _documented() == {code.value: code.name for code in ExitCode}


def test_required_meanings_exist() -> None:
    required = {"OK", "WARNINGS", "ERROR", "CONFIG", "STATE_LOCKED", "GPG", "RESUMABLE"}
    required |= {"NOT_READY", "INTEGRITY", "INTERRUPTED"}
    assert required <= set(ExitCode.__members__)
    assert ExitCode.INTERRUPTED.value == 130
    assert ExitCode.OK.value == 0


def _error_classes() -> list[type[AglacierError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, AglacierError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_maps_to_a_documented_code(cls: type[AglacierError]) -> None:
    assert isinstance(cls.exit_code, ExitCode)
    assert cls.exit_code.value in _documented()
    assert cls.exit_code not in (ExitCode.OK, ExitCode.WARNINGS)


def test_usage_error_gives_one_line_and_the_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--no-such-option"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "Traceback" not in err
    assert err.startswith("aglacier: error: ")
    assert len(err.strip().splitlines()) == 1


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == ExitCode.USAGE
    assert "invalid choice" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE
    assert "COMMAND" in capsys.readouterr().err


def test_global_options_work_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.toml"
    for argv in (
        ["--config", str(missing), "config", "show"],
        ["config", "show", "--config", str(missing)],
    ):
        assert main(argv) == ExitCode.CONFIG
        assert str(missing) in capsys.readouterr().err
