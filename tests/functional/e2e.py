"""Helpers for end-to-end tests that stop, crash and resume the real command line.

:class:`Running` starts ``python -m aglacier`` in its own process group (so that
``kill -9`` and Ctrl-C reach tar and gpg too, as a crash or a terminal would) and
reads its ``--json`` events and stderr in threads, so that a test can wait for an
event with a timeout. The other helpers read what the command left behind: the
state (through the CLI), the vault emulator's data folder and counters, a moto
bucket, and a restore made with plain ``gpg -d | tar -x``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from aglacier.units import MiB
from tests.functional.conftest import Cli
from tests.functional.trees import make_source_tree, snapshot
from tests.gpgkeys import GnupgHome
from tests.vault_emulator import CounterSnapshot, VaultEmulator
from tests.vault_emulator.testing import glacier_client

#: Seconds any single wait in these tests may take before it fails.
WAIT = 30.0
VAULT = "backups"
#: Random data in :func:`big_source`: enough that staging cannot finish in the few
#: milliseconds a test needs to notice tar and stop it (SIGSTOP).
RANDOM_DATA = 64 * MiB

Event = dict[str, Any]


class Running:
    """One CLI command running in the background, in a new process group.

    Use as a context manager: leaving it kills the group (if still running),
    reaps the process, joins the reader threads and closes the pipes.
    """

    def __init__(self, cli: Cli, *args: str) -> None:
        cli.write_config()
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aglacier", *args],
            env=cli.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cli.root,
            start_new_session=True,
        )
        self.events: list[Event] = []
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._ended = False
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self.process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _pump_stdout(self, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                self._lines.put(line)
        finally:
            self._lines.put(None)

    def _pump_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            with self._stderr_lock:
                self._stderr.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        with self._stderr_lock:
            return "".join(self._stderr)

    def _take(self, timeout: float) -> bool:
        """Move one stdout line into ``events``; False on timeout or at the end."""
        if self._ended:
            return False
        try:
            line = self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        if line is None:
            self._ended = True
            return False
        text = line.decode("utf-8", "replace").strip()
        if text:
            self.events.append(json.loads(text))
        return True

    def wait_event(self, name: str, count: int = 1, *, timeout: float = WAIT) -> Event:
        """The ``count``-th ``--json`` event called ``name``, once it has been printed."""

        def matching() -> list[Event]:
            return [e for e in self.events if e["event"] == name]

        deadline = time.monotonic() + timeout
        while len(matching()) < count:
            remaining = deadline - time.monotonic()
            if not self._take(remaining):
                if self._ended:
                    raise AssertionError(
                        f"`aglacier {' '.join(self.args)}` ended (status "
                        f"{self.process.wait(WAIT)}) before event {name} #{count}; "
                        f"stderr: {self.stderr}"
                    )
                if remaining <= 0:
                    raise AssertionError(
                        f"no event {name} #{count} within {timeout} s; saw "
                        f"{[e['event'] for e in self.events]}; stderr: {self.stderr}"
                    )
        return matching()[count - 1]

    def wait_stderr(self, text: str, *, timeout: float = WAIT) -> None:
        """Wait until ``text`` appears on the command's stderr."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if self.process.poll() is not None:
                self._join()  # everything it wrote is read now
                assert text in self.stderr, f"ended ({self.process.returncode}): {self.stderr}"
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on stderr within {timeout} s: {self.stderr}")
            time.sleep(0.01)

    def tar(self, *, timeout: float = WAIT) -> int:
        """The pid of the tar that writes the archive (``tar --create``), once it runs.

        (Not the ``tar --version`` that checks for GNU tar first.) Fails if the
        command ends or ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = _children(self.process.pid, ("tar", "gtar"), "--create")
            if found:
                return found[0]
            if self.process.poll() is not None:
                raise AssertionError(f"ended ({self.process.returncode}) before tar ran")
            if time.monotonic() > deadline:
                raise AssertionError(f"tar did not run within {timeout} s")
            time.sleep(0.002)

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the whole process group (a terminal's Ctrl-C does that)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill9(self) -> None:
        """``kill -9`` the command and its tar and gpg, and reap it."""
        self.send(signal.SIGKILL)
        self.process.wait(WAIT)
        self._join()

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the command to end by itself; its exit status."""
        status = self.process.wait(timeout)
        self._join()
        return status

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(WAIT)
        while self._take(0):
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            self.send(signal.SIGKILL)
        try:
            self.process.wait(WAIT)
        finally:
            self._join()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _children(parent: int, names: tuple[str, ...], argument: str) -> list[int]:
    """Children of ``parent`` named one of ``names`` with ``argument`` on their command line
    (Linux ``/proc``)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid != parent or comm not in names:
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in arguments:
            found.append(int(entry.name))
    return found


# --- what the state says, through the command line ---------------------------------------


def pending_runs(cli: Cli) -> list[dict[str, Any]]:
    """``list-pending --local-only --json``: the unfinished runs."""
    document = cli.json("list-pending", "--local-only")
    assert isinstance(document, dict)
    runs: list[dict[str, Any]] = document["runs"]
    return runs


def untracked_uploads(cli: Cli) -> list[dict[str, Any]]:
    """``list-pending --json``: uploads on the destination that no run knows."""
    document = cli.json("list-pending")
    assert isinstance(document, dict)
    assert document["runs"] == [], document
    uploads: list[dict[str, Any]] = document["untracked_uploads"]
    return uploads


def catalog(cli: Cli) -> list[dict[str, Any]]:
    """``list --json``: the finished archives."""
    archives = cli.json("list")
    assert isinstance(archives, list)
    return archives


def log_events(cli: Cli) -> list[str]:
    """The ``event`` of every log entry, oldest first."""
    result = cli.run("log", "--json", "-n", "0")
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["event"] for line in result.stdout.splitlines()]


def resume(cli: Cli) -> subprocess.CompletedProcess[str]:
    result = cli.run("resume", timeout=90)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def big_source(root: Path) -> Path:
    """The usual tree, a 600 MiB sparse disk image with a little data, and random files.

    GNU tar skips the image's holes (``--sparse``), so it is quick to stage; the
    random files are what make staging last a moment.
    """
    tree = make_source_tree(root, big=MiB)
    with (tree / "disk.img").open("wb") as image:
        image.truncate(600 * MiB)
        image.seek(300 * MiB)
        image.write(os.urandom(64 * 1024))
    data = tree / "random"
    data.mkdir()
    for index in range(RANDOM_DATA // (16 * MiB)):
        (data / f"{index}.bin").write_bytes(os.urandom(16 * MiB))
    return tree


# --- restores ----------------------------------------------------------------------------


def decrypt_and_untar(archive: Path, gnupg: GnupgHome, into: Path) -> None:
    """``gpg -d ARCHIVE | tar -x``, with nothing but plain gpg and GNU tar.

    GNU tar stops reading at the record holding the end-of-archive marker; in a
    shell, anything gpg writes after that makes gpg fail with "Broken pipe" (it
    did when aglacier wrote 64 KiB tar records). Here that rest is read instead,
    so that the check is deterministic and names the problem: there must be none,
    and gpg must end with status 0 (its integrity check passed).
    """
    into.mkdir(parents=True)
    with subprocess.Popen(
        ["gpg", "--homedir", str(gnupg.home), "--batch", "--quiet", "-d", str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as gpg:
        assert gpg.stdout is not None and gpg.stderr is not None
        tar = subprocess.run(
            ["tar", "-x", "-C", str(into)], stdin=gpg.stdout, capture_output=True, check=False
        )
        rest = gpg.stdout.read()
        errors = gpg.stderr.read()
        status = gpg.wait(WAIT)
    assert tar.returncode == 0, tar.stderr
    assert status == 0, errors
    assert rest == b"", f"tar -x left {len(rest)} bytes of gpg's output unread"


_BLOCK = 1 << 16
_ZEROS = bytes(_BLOCK)


def _data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """Where a file has data (SEEK_DATA/SEEK_HOLE); the whole file if that is not supported."""
    ranges: list[tuple[int, int]] = []
    position = 0
    try:
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole from here to the end
                    break
                raise
            position = os.lseek(fd, start, os.SEEK_HOLE)
            ranges.append((start, position))
    except OSError:
        return [(0, size)]
    return ranges


def content_digest(path: Path) -> str:
    """A digest of a file's contents that reads only its data, not its holes.

    SHA256 over the size and every 64 KiB block (at a multiple of 64 KiB) that is not
    all zeros, with its offset: equal contents give equal digests however the holes
    of the two files are laid out, so a 600 MiB sparse file costs what its data does.
    """
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(size.to_bytes(8, "big"))
    fd = os.open(path, os.O_RDONLY)
    try:
        done = -1  # the last block hashed or skipped
        for start, end in _data_ranges(fd, size):
            for offset in range(start - start % _BLOCK, end, _BLOCK):
                if offset <= done:
                    continue
                done = offset
                block = os.pread(fd, _BLOCK, offset)
                if block != _ZEROS[: len(block)]:
                    digest.update(offset.to_bytes(8, "big") + block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def digest_tree(root: Path, *, skip_tag: str = "NOBACKUP") -> dict[str, tuple[str, str]]:
    """:func:`snapshot` with :func:`content_digest` instead of contents (for large trees).

    The same walk: folders holding ``skip_tag`` left out, links not followed.
    """
    entries: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in list(dirnames):
            path = here / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", str(path.readlink()))
                dirnames.remove(name)
            elif (path / skip_tag).exists():
                dirnames.remove(name)
            else:
                entries[rel] = ("dir", "")
        for name in filenames:
            path = here / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", str(path.readlink()))
            else:
                entries[rel] = ("file", content_digest(path))
    return entries


def assert_restores_to(
    archive: Path, gnupg: GnupgHome, source: Path, into: Path, *, large: bool = False
) -> None:
    """The archive decrypts and extracts to exactly ``source`` (NOBACKUP folders left out)."""
    decrypt_and_untar(archive, gnupg, into)
    restored = into / source.name
    assert sorted(p.name for p in into.iterdir()) == [source.name]
    if large:
        assert digest_tree(restored) == digest_tree(source)
    else:
        assert snapshot(restored) == snapshot(source)
    tagged = {str(p.parent.relative_to(source)) for p in source.rglob("NOBACKUP")}
    assert tagged, "the source tree should have a NOBACKUP folder"
    for folder in tagged:
        assert not (restored / folder).exists(), f"{folder} holds NOBACKUP but was archived"


# --- the vault emulator ------------------------------------------------------------------


def vault_archive_ids(emu: VaultEmulator, vault: str = VAULT) -> list[str]:
    """Ids of the archives whose bytes are in the emulator's data folder."""
    folder = emu.data_dir / "vaults" / vault / "archives"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".json"))


def open_vault_uploads(emu: VaultEmulator, vault: str = VAULT) -> list[dict[str, Any]]:
    """ListMultipartUploads, through boto3."""
    client = glacier_client(emu.endpoint_url)
    try:
        uploads: list[dict[str, Any]] = client.list_multipart_uploads(vaultName=vault)[
            "UploadsList"
        ]
        return uploads
    finally:
        client.close()


def attempted(counters: CounterSnapshot, upload_id: str) -> dict[str, int]:
    """Part uploads the emulator processed for ``upload_id``, by byte range."""
    return {r: n for (u, r), n in counters.part_uploads.items() if u == upload_id}


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def expected_ranges(size: int, part_size: int) -> set[str]:
    """The byte ranges ``FIRST-LAST`` of an archive of ``size`` bytes."""
    return {f"{start}-{min(start + part_size, size) - 1}" for start in range(0, size, part_size)}


@contextlib.contextmanager
def released(emu: VaultEmulator, *, drop: bool = True) -> Iterator[None]:
    """Whatever happens inside, stop holding afterwards.

    ``drop``: parked part uploads are cut off unanswered and store nothing (a
    killed client's whole body may sit in the socket buffers); without it, they
    and parked answers proceed.
    """
    try:
        yield
    finally:
        emu.release(drop=drop)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def spool_is_empty(cli: Cli) -> bool:
    return not cli.spool_dir.exists() or not any(cli.spool_dir.iterdir())


def assert_one_vault_archive(
    cli: Cli, emu: VaultEmulator, source: Path, into: Path, *, large: bool = False
) -> dict[str, Any]:
    """After a finished run: one archive in the vault and in the catalog, restorable to
    ``source``; no upload open on the vault, no unfinished run, no spool left."""
    [entry] = catalog(cli)
    assert vault_archive_ids(emu) == [entry["archive_id"]]
    archive = emu.archive_path(VAULT, entry["archive_id"])
    assert archive.stat().st_size == entry["size"]
    assert file_sha256(archive) == entry["sha256"]
    assert_restores_to(archive, cli.gnupg, source, into, large=large)
    assert open_vault_uploads(emu) == []
    assert untracked_uploads(cli) == []
    assert spool_is_empty(cli)
    return entry
