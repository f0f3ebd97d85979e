"""GNU tar: detection, the size estimate against real tar, message classification."""

from __future__ import annotations

import io
import os
import socket
import subprocess
from pathlib import Path

import pytest

from aglacier.errors import AglacierError, ExitCode, SourceError
from aglacier.staging import estimate_source_size
from aglacier.staging.tar import (
    TarMessages,
    find_gnu_tar,
    spawn_tar,
    tar_command,
    tar_warnings,
)

TAG = "NOBACKUP"


def _tar_size(source: Path) -> int:
    tar = find_gnu_tar(os.environ["PATH"])
    done = subprocess.run(tar_command(tar, source.resolve(), TAG), capture_output=True, check=True)
    return len(done.stdout)


def _make_tree(root: Path) -> Path:
    source = root / "source"
    (source / "empty").mkdir(parents=True)
    (source / "data.bin").write_bytes(os.urandom(70_001))
    (source / "exact.bin").write_bytes(bytes(1024))
    (source / ("n" * 99)).write_bytes(b"x")  # just under tar's 100-byte name field
    deep = source / ("d" * 120) / ("e" * 200)
    deep.mkdir(parents=True)
    (deep / ("f" * 250)).write_bytes(b"long")
    (source / "link").symlink_to("t" * 180)  # long, dangling target
    (source / "hard").hardlink_to(deep / ("f" * 250))  # stored once, then as a link
    (source / "skip" / "inner").mkdir(parents=True)
    (source / "skip" / TAG).touch()
    (source / "skip" / "inner" / "big").write_bytes(bytes(50_000))
    os.mkfifo(source / "fifo")
    return source


def test_estimate_is_tar_output_size(tmp_path: Path) -> None:
    source = _make_tree(tmp_path)
    assert estimate_source_size(source, TAG) == _tar_size(source)


def test_estimate_of_a_single_file_and_a_tagged_root(tmp_path: Path) -> None:
    source = _make_tree(tmp_path)
    assert estimate_source_size(source / "data.bin", TAG) == _tar_size(source / "data.bin")
    tagged = source / "skip"
    assert estimate_source_size(tagged, TAG) == _tar_size(tagged) == 10 * 1024  # empty archive


def test_estimate_of_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder") as caught:
        estimate_source_size(tmp_path / "gone", TAG)
    assert caught.value.exit_code == ExitCode.SOURCE
    assert "\n" not in str(caught.value)


def test_sockets_are_skipped_silently(tmp_path: Path) -> None:
    source = tmp_path / "home"
    source.mkdir()
    (source / "file").write_bytes(b"data")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(source / "S.gpg-agent"))
        tar = find_gnu_tar(os.environ["PATH"])
        done = subprocess.run(tar_command(tar, source, TAG), capture_output=True, check=True)
    messages = TarMessages(io.BytesIO(done.stderr))
    messages.start()
    messages.join()
    assert messages.lines == []  # only tar's count of what it wrote
    assert messages.total == len(done.stdout) == estimate_source_size(source, TAG)


def test_command_line(tmp_path: Path) -> None:
    command = tar_command("/usr/bin/tar", tmp_path / "my docs", TAG)
    assert command[-3:] == [f"--directory={tmp_path}", "--", "my docs"]
    assert "--exclude-tag-all=NOBACKUP" in command
    assert "--format=gnu" in command
    assert not {"-h", "--dereference"} & set(command)


def test_bsdtar_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "tar"
    fake.write_text("#!/bin/sh\necho 'bsdtar 3.7.2 - libarchive 3.7.2'\n")
    fake.chmod(0o755)
    with pytest.raises(AglacierError, match="is not GNU tar") as caught:
        find_gnu_tar(str(tmp_path))
    assert caught.value.hint is not None and "GNU tar" in caught.value.hint
    with pytest.raises(AglacierError, match="tar is not installed"):
        find_gnu_tar(str(tmp_path / "empty"))


# --- how tar ended ------------------------------------------------------------------


def _messages(*lines: str) -> TarMessages:
    messages = TarMessages(io.BytesIO("".join(f"tar: {line}\n" for line in lines).encode()))
    messages.start()
    messages.join()
    return messages


def test_tar_counts_what_it_writes(tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    tar = spawn_tar(tar_command(find_gnu_tar(os.environ["PATH"]), source, TAG))
    archive, stderr = tar.communicate()
    assert tar.returncode == 0
    seen: list[int] = []

    class Watched(TarMessages):
        def _counted(self, line: str) -> bool:
            counted = super()._counted(line)
            seen.append(self.written)
            return counted

    messages = Watched(io.BytesIO(stderr))
    messages.start()
    messages.join()
    assert messages.lines == []
    assert len(set(seen)) >= 4  # ~1 MiB steps, then the total
    assert seen == sorted(seen)
    assert seen[-1] == messages.total == len(archive)


def test_progress_lines_are_not_messages() -> None:
    messages = _messages("100", "src/1234: file changed as we read it", "200")
    assert messages.lines == ["src/1234: file changed as we read it"]
    assert messages.written == 200 * 10240
    assert messages.total is None


def test_changed_and_unreadable_files_are_warnings() -> None:
    lines = [
        "src/log.txt: file changed as we read it",
        "src/private: Cannot open: Permission denied",
        "src/gone: Cannot stat: No such file or directory",
        "src/disk.img: Read error at byte 0, while reading 512 bytes: Input/output error",
    ]
    everything = [*lines, "Exiting with failure status due to previous errors"]
    assert tar_warnings(1, _messages(lines[0]), "src") == lines[:1]
    assert tar_warnings(2, _messages(*everything), "src") == lines


@pytest.mark.parametrize(
    ("returncode", "lines", "message"),
    [
        (2, ["src: Cannot open: Permission denied"], "tar: src: Cannot open"),
        (2, ["src: Cannot stat: No such file or directory"], "Cannot stat"),
        (2, ["src/a: Cannot open: Permission denied", "-: Cannot write: Broken pipe"], "write"),
        (2, [], "exit status 2"),
        (-9, [], "killed by signal 9"),
    ],
)
def test_fatal_endings(returncode: int, lines: list[str], message: str) -> None:
    with pytest.raises(SourceError, match=message):
        tar_warnings(returncode, _messages(*lines), "src")


def test_messages_kept_in_memory_are_bounded() -> None:
    many = [f"src/f{n}: file changed as we read it" for n in range(1500)]
    warnings = tar_warnings(1, _messages(*many), "src")
    assert len(warnings) == 1001
    assert warnings[-1] == "... and 500 more messages from tar"
