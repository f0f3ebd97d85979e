"""Decrypt a verified download and extract it, leaving no plaintext behind on failure.

Threads (none of them the event loop's):

- *runner* (an anyio worker): starts two GNU tars and gpg (python-gnupg), waits
  for all three, judges how they ended, moves the result into place, and removes
  the private extraction folder whatever happened;
- python-gnupg's copier feeds the download to gpg; its data reader hands each
  chunk of plaintext to :meth:`Extraction._on_data`, which writes it to **both**
  tars: ``tar --list --absolute-names`` (the member names, exactly as stored) and
  ``tar --extract`` into the private folder;
- a *listing checker* reads tar's listing: a member with an absolute name or a
  ``..`` component stops everything at once (gpg and both tars are killed) and
  the restore is refused. GNU tar itself would strip such names and refuse to
  extract through symbolic links that point outside; refusing the archive says
  plainly that it is not what aglacier writes;
- readers of each tar's standard error.

The plaintext exists only in pipes and in the private folder (0700, inside the
target folder). It is moved into place only if gpg reported a good decryption
(``DECRYPTION_OKAY``, which includes the integrity check of the whole message),
both tars succeeded and every name passed. On any failure or on Ctrl-C the
private folder is removed; gpg decrypting damaged ciphertext may have produced
plaintext before failing, and it goes with the folder. Only a hard kill can leave
the folder behind: the next restore into the same folder removes it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path
from typing import IO

from aglacier.errors import AglacierError
from aglacier.restore.decrypt import DecryptingGPG, Decryption, decrypted_ok
from aglacier.restore.place import make_temp_dir, place_entries, remove_tree
from aglacier.staging.pipes import enlarge_pipe
from aglacier.staging.tar import TarMessages

_TAR_ENV = {"LC_ALL": "C.UTF-8"}
_EXTRACT = ["--extract", "--file=-", "--preserve-permissions"]
_LIST = ["--list", "--file=-", "--absolute-names", "--quoting-style=escape"]


class UnsafeArchiveError(AglacierError):
    """The archive has members that would land outside the target folder."""


def unsafe_member(name: str) -> bool:
    """An absolute name, or one with a ``..`` component (as tar lists it)."""
    return name.startswith("/") or ".." in name.split("/")


class _Stopped(AglacierError):
    """Stopped by :meth:`Extraction.kill` (the cancellation says why)."""

    def __init__(self) -> None:
        super().__init__("stopped")


class _CountingReader:
    """The download, read by python-gnupg's copier; counts bytes for progress."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb", buffering=0)
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._file.read(size)
        self.count += len(data or b"")
        return data or b""

    def close(self) -> None:
        self._file.close()


class Extraction:
    """Decrypt ``download`` and extract it into ``into``; :meth:`run` is the blocking body."""

    def __init__(
        self, download: Path, into: Path, decryption: Decryption, *, tar: str, overwrite: bool
    ) -> None:
        self._download = download
        self._into = into
        self._decryption = decryption
        self._tar = tar
        self._overwrite = overwrite
        self._lock = threading.Lock()
        self._stopping = False  # start no process any more
        self._cancelled = False  # kill() was called: the cancellation says why
        self._failure: BaseException | None = None
        self._finished: set[int] = set()  # pids of tars that stopped reading
        self._tar_failed = False  # a tar failed while the stream went on
        self._gpg: DecryptingGPG | None = None
        self._tars: list[subprocess.Popen[bytes]] = []
        self._reader: _CountingReader | None = None
        self._placed: list[str] | None = None
        self.members = 0

    @property
    def ciphertext_read(self) -> int:
        """Bytes of the download fed to gpg so far."""
        return self._reader.count if self._reader is not None else 0

    # --- control, from any thread ------------------------------------------------

    def kill(self) -> None:
        """Stop gpg and both tars now (idempotent); the private folder is then removed."""
        with self._lock:
            self._cancelled = True
        self._stop()

    def _stop(self) -> None:
        """End the processes and start no more (after a failure, or :meth:`kill`)."""
        with self._lock:
            self._stopping = True
            if self._gpg is not None:
                self._gpg.kill()
            for tar in self._tars:
                if tar.returncode is None:
                    tar.kill()

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = error
        self._stop()

    def outcome(self) -> list[str]:
        """The top-level names put into place, or the error that stopped the restore."""
        if self._failure is not None:
            raise self._failure
        assert self._placed is not None
        return self._placed

    # --- the runner thread -------------------------------------------------------

    def run(self) -> None:
        """Decrypt, extract, check, place; never raises (see :meth:`outcome`)."""
        try:
            temp = make_temp_dir(self._into)
        except OSError as exc:
            self._fail(AglacierError(f"cannot create a folder in {self._into}: {exc.strerror}"))
            return
        try:
            self._extract(temp)
            with self._lock:
                if self._cancelled:
                    raise _Stopped
            self._placed = place_entries(temp, self._into, overwrite=self._overwrite)
        except Exception as exc:
            self._fail(exc)
        finally:
            self._reap()
            try:
                remove_tree(temp)
            except OSError as exc:  # pragma: no cover - shown, never hidden
                self._fail(AglacierError(f"could not remove {temp}: {exc.strerror}"))

    def _extract(self, temp: Path) -> None:
        extract = self._spawn([*_EXTRACT, f"--directory={temp}"], listing=False)
        listing = self._spawn(_LIST, listing=True)
        assert listing.stdout is not None
        checker = threading.Thread(
            target=self._check_listing, args=(listing.stdout,), name="aglacier-tar-list"
        )
        checker.start()
        said = {tar.pid: _start_messages(tar) for tar in (extract, listing)}
        gpg_error = None
        try:
            gpg_error = self._decrypt()
        finally:
            for tar in (extract, listing):
                assert tar.stdin is not None
                with contextlib.suppress(OSError):
                    tar.stdin.close()
            if gpg_error is not None or self._failure is not None:
                self._stop()
            for tar in (extract, listing):
                tar.wait()
            checker.join()
            for messages in said.values():
                messages.join()
        if self._failure is not None:
            raise self._failure
        tar_error = _tar_error(extract, said[extract.pid], "extract") or _tar_error(
            listing, said[listing.pid], "list"
        )
        if self._tar_failed and tar_error is not None:
            raise tar_error  # tar stopped first (a full disk): gpg was killed because of it
        with self._lock:
            if self._cancelled:
                raise _Stopped
        if gpg_error is not None:
            raise gpg_error
        if tar_error is not None:
            raise tar_error

    def _reap(self) -> None:
        """Kill and wait for any tar still running (after a failure to start the other)."""
        for tar in self._tars:
            if tar.poll() is None:
                tar.kill()
            tar.wait()

    def _spawn(self, args: list[str], *, listing: bool) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._stopping:
                raise _Stopped
            tar = subprocess.Popen(
                ["tar", *args],
                executable=self._tar,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if listing else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                bufsize=0,
                env={**os.environ, **_TAR_ENV},
                start_new_session=True,  # Ctrl-C reaches only aglacier, which kills tar
            )
            self._tars.append(tar)
        enlarge_pipe(tar.stdin)
        return tar

    def _decrypt(self) -> AglacierError | None:
        gpg = DecryptingGPG(self._decryption)
        gpg.on_data = self._on_data
        with self._lock:
            if self._stopping:
                raise _Stopped
            self._gpg = gpg
        self._reader = _CountingReader(self._download)
        try:
            result = gpg.decrypt(self._reader)
        except OSError:  # gpg stopped reading: killed, or it gave up
            return gpg.decrypt_failure()
        finally:
            self._reader.close()
        return None if decrypted_ok(result) else gpg.decrypt_failure()

    def _on_data(self, data: bytes) -> bool:
        """python-gnupg's data reader: the same plaintext to both tars.

        A tar that stops reading is left out from then on. If it failed, everything
        stops; if it succeeded (the end-of-archive came before the end of the
        stream), gpg goes on to the end, where it checks the message's integrity.
        """
        if not data or self._failure is not None:
            return False
        for tar in self._tars:
            if tar.pid in self._finished:
                continue
            try:
                assert tar.stdin is not None
                _write_all(tar.stdin.fileno(), data)
            except BrokenPipeError:
                self._finished.add(tar.pid)
                status = _exit_status(tar)
                if status != 0:
                    self._tar_failed = status > 0  # < 0: killed, by us
                    self._stop()
                    return False
            except Exception as exc:
                self._fail(exc)
                return False
        return False  # python-gnupg must not keep the plaintext in memory

    def _check_listing(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.members += 1
            name = raw.rstrip(b"\n").decode("utf-8", "backslashreplace")
            if self._failure is None and unsafe_member(name):
                self._fail(
                    UnsafeArchiveError(
                        f"refused: the archive has a member outside the target folder ({name!r}); "
                        "nothing was restored",
                        hint="aglacier's own archives never hold absolute or '..' names; "
                        "inspect this one by hand (docs/restore.md) in an empty folder",
                    )
                )
        stream.close()


def _tar_error(
    tar: subprocess.Popen[bytes], messages: TarMessages, action: str
) -> AglacierError | None:
    if tar.returncode == 0:
        return None
    if tar.returncode < 0:
        return AglacierError(f"tar was killed by signal {-tar.returncode}")
    said = messages.lines[0] if messages.lines else f"exit status {tar.returncode}"
    return AglacierError(f"tar could not {action} the decrypted archive: {said}")


def _exit_status(tar: subprocess.Popen[bytes]) -> int:
    """The status of a tar that closed its input: it is exiting, or about to."""
    try:
        return tar.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _start_messages(tar: subprocess.Popen[bytes]) -> TarMessages:
    assert tar.stderr is not None
    messages = TarMessages(tar.stderr)
    messages.start()
    return messages
