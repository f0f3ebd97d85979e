"""stage() end to end with real GNU tar and gpg, checked with plain gpg and tar."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
import pytest
from botocore.utils import calculate_tree_hash

from aglacier.config import EncryptionConfig
from aglacier.errors import ExitCode, GpgError, PlanError, SourceError
from aglacier.staging import (
    Encryption,
    SpooledPart,
    StagingResult,
    estimate_source_size,
    resolve_encryption,
    stage,
)
from aglacier.units import GiB, MiB
from tests.gpgkeys import GnupgHome

TAG = "NOBACKUP"
MARKER = b"AGLACIER-PLAINTEXT-MARKER-5f1d0c"
NON_UTF8 = os.fsdecode(b"latin-\xe9t\xe9.txt")  # not valid UTF-8: must come back byte for byte


@pytest.fixture
def encryption(gnupg_home: GnupgHome) -> Encryption:
    config = EncryptionConfig(recipients=(gnupg_home.fingerprint,), gnupghome=gnupg_home.home)
    return resolve_encryption(config, os.environ)


@dataclass
class Staged:
    result: StagingResult
    parts: list[SpooledPart]
    progress: list[tuple[int, int]] = field(default_factory=list)


async def _stage(
    source: Path,
    spool: Path,
    encryption: Encryption,
    *,
    part_size: int = MiB,
    on_part: Callable[[SpooledPart], None] | None = None,
) -> Staged:
    send, receive = anyio.create_memory_object_stream[SpooledPart](math.inf)
    parts: list[SpooledPart] = []
    progress: list[tuple[int, int]] = []

    async def consume() -> None:
        async with receive:
            async for part in receive:
                on_disk = (await anyio.Path(spool).stat()).st_size
                assert on_disk >= part.offset + part.size  # written before it is handed over
                parts.append(part)
                if on_part is not None:
                    on_part(part)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            result = await stage(
                source,
                spool,
                part_size=part_size,
                encryption=encryption,
                exclude_tag=TAG,
                parts=send,
                progress=lambda read, spooled: progress.append((read, spooled)),
                progress_interval=0.01,
            )
    except ExceptionGroup as group:  # stage()'s own error, wrapped by the group above
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return Staged(result, parts, progress)


def _make_tree(root: Path) -> Path:
    source = root / "My Documents"
    (source / "empty folder").mkdir(parents=True)
    (source / "with space.txt").write_bytes(b"some words " + MARKER + b"\n")
    (source / "café ünïcödé 日本.txt").write_text("déjà vu\n", encoding="utf-8")
    (source / NON_UTF8).write_bytes(b"latin-1 name\n")
    (source / "big.bin").write_bytes(os.urandom(5 * MiB + 4321))
    nested = source / "nested" / "deeper"
    nested.mkdir(parents=True)
    (nested / ("long-" + "n" * 140)).write_bytes(b"long name\n")
    (source / "nested" / "hard").hardlink_to(source / "with space.txt")
    (source / "link to file").symlink_to("with space.txt")
    (source / "link to folder").symlink_to("nested")
    (source / "dangling").symlink_to("/nowhere/at/all")
    for tagged in (source / "Cache", nested / "build"):
        tagged.mkdir()
        (tagged / TAG).touch()
        (tagged / "secret.txt").write_bytes(MARKER)
    return source


def _snapshot(root: Path, *, skip_tagged: bool = False) -> dict[bytes, tuple[object, ...]]:
    """Every entry under ``root`` by relative (byte) name: type and content or target."""
    entries: dict[bytes, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        if skip_tagged:  # what tar leaves out: folders holding the tag, tag and all
            dirs[:] = [name for name in dirs if not Path(folder, name, TAG).exists()]
        for name in dirs + files:
            path = Path(folder, name)
            key = os.fsencode(path.relative_to(root))  # the name's original bytes
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                entries[key] = ("link", os.fsencode(path.readlink()))
            elif stat.S_ISREG(mode):
                entries[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                entries[key] = ("dir",)
    return entries


def _decrypt(spool: Path, home: Path, out: Path, passphrase_file: Path | None = None) -> Path:
    command = ["gpg", "--homedir", str(home), "--batch", "--yes", "--output", str(out)]
    if passphrase_file is not None:
        command += ["--pinentry-mode", "loopback", "--passphrase-file", str(passphrase_file)]
    subprocess.run([*command, "--decrypt", str(spool)], check=True, capture_output=True)
    return out


def _extract(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(dest)], check=True)
    return dest


def _check_parts(spool: Path, staged: Staged, part_size: int) -> None:
    data = spool.read_bytes()
    result, parts = staged.result, staged.parts
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).digest()
    assert result.tree_hash == bytes.fromhex(calculate_tree_hash(io.BytesIO(data)))
    assert result.part_count == len(parts) >= 1
    offset = 0
    for number, part in enumerate(parts):
        assert (part.number, part.offset) == (number, offset)
        assert part.size == part_size if number < len(parts) - 1 else 0 < part.size <= part_size
        piece = data[offset : offset + part.size]
        assert part.sha256 == hashlib.sha256(piece).digest()
        assert part.tree_hash == bytes.fromhex(calculate_tree_hash(io.BytesIO(piece)))
        offset += part.size
    assert offset == len(data)


def _children() -> list[tuple[int, str, str]]:
    """This process's child processes (zombies included): (pid, name, state)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid():
            found.append((int(entry.name), name, state))
    return found


def _our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if not t.name.startswith("AnyIO worker")]


# --- round trips --------------------------------------------------------------------


@pytest.mark.anyio
async def test_round_trip_with_plain_gpg_and_tar(
    tmp_path: Path, gnupg_home: GnupgHome, encryption: Encryption
) -> None:
    source = _make_tree(tmp_path)
    spool = tmp_path / "spool" / "run.spool"
    staged = await _stage(source, spool, encryption)

    assert staged.result.warnings == []
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o700
    assert MARKER not in spool.read_bytes()  # ciphertext only
    _check_parts(spool, staged, MiB)

    archive = _decrypt(spool, gnupg_home.home, tmp_path / "out.tar")
    restored = _extract(archive, tmp_path / "restored") / source.name
    assert _snapshot(restored) == _snapshot(source, skip_tagged=True)
    assert not (restored / "Cache").exists()
    assert (restored / "empty folder").is_dir()
    hard = restored / "nested" / "hard"
    assert hard.stat().st_ino == (restored / "with space.txt").stat().st_ino

    # progress: tar's bytes (exactly the estimate), then the spool's, never going back
    assert staged.progress[-1] == (estimate_source_size(source, TAG), staged.result.size)
    assert staged.progress == sorted(staged.progress)
    assert archive.stat().st_size == staged.progress[-1][0]


@pytest.mark.anyio
async def test_symmetric_round_trip(
    tmp_path: Path, gnupg_home: GnupgHome, encryption: Encryption
) -> None:
    source = tmp_path / "notes"
    source.mkdir()
    (source / "note.txt").write_bytes(MARKER)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes("ünïcode pass phrase\n".encode())
    passphrase.chmod(0o600)
    config = EncryptionConfig(passphrase_file=passphrase, gnupghome=gnupg_home.home)
    symmetric = resolve_encryption(config, os.environ)
    spool = tmp_path / "spool" / "run.spool"

    staged = await _stage(source, spool, symmetric, part_size=4096)

    assert MARKER not in spool.read_bytes()
    _check_parts(spool, staged, 4096)
    archive = _decrypt(spool, gnupg_home.home, tmp_path / "out.tar", passphrase)
    restored = _extract(archive, tmp_path / "restored")
    assert (restored / "notes" / "note.txt").read_bytes() == MARKER


@pytest.mark.anyio
async def test_a_single_file_and_an_odd_part_size(
    tmp_path: Path, gnupg_home: GnupgHome, encryption: Encryption
) -> None:
    source = tmp_path / "photo.raw"
    source.write_bytes(os.urandom(3 * MiB))
    spool = tmp_path / "run.spool"
    part_size = MiB + 512 * 3  # not a MiB multiple: part tree hashes have their own leaves
    staged = await _stage(source, spool, encryption, part_size=part_size)
    _check_parts(spool, staged, part_size)
    restored = _extract(_decrypt(spool, gnupg_home.home, tmp_path / "o.tar"), tmp_path / "r")
    assert (restored / "photo.raw").read_bytes() == source.read_bytes()


@pytest.mark.anyio
async def test_a_sparse_file_over_8_gib(
    tmp_path: Path, gnupg_home: GnupgHome, encryption: Encryption
) -> None:
    source = tmp_path / "vm"
    source.mkdir()
    size = 9 * GiB
    with (source / "disk.img").open("wb") as image:
        image.truncate(size)
        image.seek(size - 4096)
        image.write(MARKER)
    spool = tmp_path / "run.spool"
    staged = await _stage(source, spool, encryption)
    assert staged.result.size < MiB  # holes are not stored
    archive = _decrypt(spool, gnupg_home.home, tmp_path / "out.tar")
    restored = _extract(archive, tmp_path / "restored") / "vm" / "disk.img"
    assert restored.stat().st_size == size
    with restored.open("rb") as image:
        image.seek(size - 4096)
        assert image.read(len(MARKER)) == MARKER


# --- warnings -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_file_that_grows_while_read_is_a_warning(
    tmp_path: Path, encryption: Encryption
) -> None:
    source = tmp_path / "logs"
    source.mkdir()
    growing = source / "app.log"
    growing.write_bytes(os.urandom(MiB) * 24)
    stop = threading.Event()

    def append() -> None:
        with growing.open("ab") as log:
            while not stop.wait(0.001):
                log.write(b"another line\n")
                log.flush()

    writer = threading.Thread(target=append)
    writer.start()
    try:
        staged = await _stage(source, tmp_path / "run.spool", encryption)
    finally:
        stop.set()
        writer.join()
    assert staged.result.warnings == ["logs/app.log: file changed as we read it"]


_STAGE_AS_SUBPROCESS = """
import anyio, json, math, os, sys
from pathlib import Path
from aglacier.config import EncryptionConfig
from aglacier.staging import resolve_encryption, stage

async def main(source, spool, home, fingerprint):
    config = EncryptionConfig(recipients=(fingerprint,), gnupghome=Path(home))
    encryption = resolve_encryption(config, os.environ)
    send, receive = anyio.create_memory_object_stream(math.inf)
    async with receive:
        result = await stage(Path(source), Path(spool), part_size=1 << 20,
            encryption=encryption, exclude_tag="NOBACKUP", parts=send)
    print(json.dumps(result.warnings))

anyio.run(main, *sys.argv[1:])
"""


def _stage_without_read_permission(source: Path, spool: Path, home: GnupgHome) -> list[str]:
    """Run stage() in a process that cannot read files it has no permission for.

    Root reads everything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): drop both
    from the child with setpriv, so that tar really gets EACCES.
    """
    command = [sys.executable, "-c", _STAGE_AS_SUBPROCESS]
    command += [str(source), str(spool), str(home.home), home.fingerprint]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        drop = "-dac_override,-dac_read_search"
        setpriv = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]
        if subprocess.run([*setpriv, "true"], capture_output=True, check=False).returncode:
            pytest.skip("running as root and not allowed to drop capabilities")
        command = [*setpriv, *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    warnings: list[str] = json.loads(done.stdout)
    return warnings


def test_unreadable_files_are_warnings(tmp_path: Path, gnupg_home: GnupgHome) -> None:
    source = tmp_path / "home"
    (source / "locked folder").mkdir(parents=True)
    (source / "readable.txt").write_bytes(b"fine")
    (source / "secret.txt").write_bytes(b"no")
    (source / "secret.txt").chmod(0)
    (source / "locked folder").chmod(0)
    spool = tmp_path / "run.spool"
    try:
        warnings = _stage_without_read_permission(source, spool, gnupg_home)
    finally:
        (source / "locked folder").chmod(0o755)
    assert sorted(warnings) == [
        "home/locked folder: Cannot open: Permission denied",
        "home/secret.txt: Cannot open: Permission denied",
    ]
    restored = _extract(_decrypt(spool, gnupg_home.home, tmp_path / "o.tar"), tmp_path / "r")
    assert (restored / "home" / "readable.txt").read_bytes() == b"fine"


@pytest.mark.anyio
async def test_a_tagged_source_gives_an_empty_archive_and_a_warning(
    tmp_path: Path, encryption: Encryption
) -> None:
    source = tmp_path / "scratch"
    source.mkdir()
    (source / TAG).touch()
    staged = await _stage(source, tmp_path / "run.spool", encryption)
    assert staged.result.warnings == [f"{source} holds {TAG}: the archive is empty"]


# --- failures -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_missing_source(tmp_path: Path, encryption: Encryption) -> None:
    spool = tmp_path / "run.spool"
    with pytest.raises(SourceError, match="no such file or folder") as caught:
        await _stage(tmp_path / "gone", spool, encryption)
    assert caught.value.exit_code == ExitCode.SOURCE
    assert int(caught.value.exit_code) == 8
    assert not spool.exists()  # found before anything started


@pytest.mark.anyio
async def test_an_existing_spool_is_refused(tmp_path: Path, encryption: Encryption) -> None:
    spool = tmp_path / "run.spool"
    spool.write_bytes(b"from an earlier run")
    with pytest.raises(PlanError, match="already exists"):
        await _stage(tmp_path, spool, encryption)
    assert spool.read_bytes() == b"from an earlier run"


@pytest.fixture
def big_source(tmp_path: Path) -> Path:
    """96 MiB: staging takes long enough to be interrupted."""
    source = tmp_path / "big"
    source.mkdir()
    block = os.urandom(MiB)
    with (source / "data.bin").open("wb") as file:
        for _ in range(96):
            file.write(block)
    return source


@pytest.mark.anyio
async def test_cancellation_kills_tar_and_gpg(
    tmp_path: Path, big_source: Path, encryption: Encryption
) -> None:
    threads_before = _our_threads()
    running: list[tuple[int, str, str]] = []
    spool = tmp_path / "run.spool"
    with anyio.CancelScope() as scope:

        def cancel(part: SpooledPart) -> None:
            running.extend(_children())
            scope.cancel()

        await _stage(big_source, spool, encryption, on_part=cancel)
    assert scope.cancelled_caught
    assert {"tar", "gpg"} <= {name for _, name, _ in running}
    assert _children() == []  # killed and reaped: no zombies
    assert _our_threads() == threads_before
    assert 0 < spool.stat().st_size < 96 * MiB  # the partial spool stays


@pytest.mark.anyio
async def test_gpg_dying_mid_stream_is_a_gpg_error(
    tmp_path: Path, big_source: Path, encryption: Encryption
) -> None:
    def kill_gpg(part: SpooledPart) -> None:
        if part.number == 0:
            for pid, name, _ in _children():
                if name == "gpg":
                    os.kill(pid, signal.SIGKILL)

    with pytest.raises(GpgError, match="gpg was killed by signal 9") as caught:
        await _stage(big_source, tmp_path / "run.spool", encryption, on_part=kill_gpg)
    assert caught.value.exit_code == ExitCode.GPG
    assert _children() == []


@pytest.mark.anyio
@pytest.mark.parametrize("big", [False, True])  # gpg's error result, or a broken pipe
async def test_a_key_gone_after_validation_is_a_gpg_error(
    tmp_path: Path, big_source: Path, encryption: Encryption, big: bool
) -> None:
    source = big_source
    if not big:
        source = tmp_path / "small.txt"
        source.write_bytes(b"small")
    vanished = replace(encryption, fingerprints=("0123456789ABCDEF" * 2 + "01234567",))
    with pytest.raises(GpgError, match="gpg failed to encrypt") as caught:
        await _stage(source, tmp_path / "run.spool", vanished)
    assert "invalid recipient" in str(caught.value)
    assert str(caught.value).endswith("encryption failed: No public key")
    assert _children() == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root and CAP_SYS_ADMIN; skipped otherwise)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.anyio
async def test_a_full_spool_folder(
    tmp_path: Path, small_disk: Path, big_source: Path, encryption: Encryption
) -> None:
    spool = small_disk / "spool" / "run.spool"
    with pytest.raises(PlanError, match=r"the spool folder .* is full: \d+ bytes free") as caught:
        await _stage(big_source, spool, encryption)
    assert caught.value.exit_code == ExitCode.PLAN
    assert str(spool.parent) in str(caught.value)
    assert _children() == []
