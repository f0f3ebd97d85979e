"""RunLock across real processes: who holds it is named, and death releases it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aglacier.errors import ExitCode, StateLockedError
from aglacier.state import LOCK_FILE_NAME, RunLock

# A child that takes the lock, says so, then waits to be killed or told to exit.
_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aglacier.state import RunLock

    lock = RunLock(Path(sys.argv[1]), command="aglacier backup /home/alice")
    lock.acquire()
    print("locked", flush=True)
    sys.stdin.readline()  # exits (without releasing) when the parent closes stdin
    """
)

# A child that tries the lock once and reports the error.
_CONTENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aglacier.errors import StateLockedError
    from aglacier.state import RunLock

    try:
        with RunLock(Path(sys.argv[1])):
            print("acquired")
    except StateLockedError as exc:
        print(exc)
        sys.exit(int(exc.exit_code))
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def contend(state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CONTENDER, str(state_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_lock_records_the_holder_and_sets_private_modes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with RunLock(state_dir, command="aglacier backup /home/alice") as lock:
        assert lock.held
        assert lock.path.read_text() == f"{os.getpid()}\naglacier backup /home/alice\n"
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
    assert not lock.held
    assert (state_dir / LOCK_FILE_NAME).read_text() == ""  # the file stays, empty


def test_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with (
        RunLock(tmp_path, command="aglacier backup /a"),
        pytest.raises(StateLockedError) as caught,
        RunLock(tmp_path),
    ):
        pass
    message = str(caught.value)
    assert f"another aglacier (pid {os.getpid()}, `aglacier backup /a`)" in message
    assert f"is using {tmp_path}; wait for it or stop it" in message
    assert caught.value.exit_code is ExitCode.STATE_LOCKED
    with RunLock(tmp_path):  # released by the first one's exit
        pass


def test_lock_held_here_is_refused_to_another_process(tmp_path: Path) -> None:
    with RunLock(tmp_path, command="aglacier resume"):
        result = contend(tmp_path)
    assert result.returncode == ExitCode.STATE_LOCKED, result.stderr
    assert f"(pid {os.getpid()}, `aglacier resume`)" in result.stdout
    assert contend(tmp_path).stdout == "acquired\n"


def test_lock_held_by_another_process_names_it(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(StateLockedError) as caught:
        RunLock(tmp_path / "state").acquire()
    assert f"(pid {holder.pid}, `aglacier backup /home/alice`)" in str(caught.value)


def test_lock_is_released_when_the_holder_is_killed(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(StateLockedError):
        RunLock(tmp_path / "state").acquire()
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    with RunLock(tmp_path / "state"):
        pass


def test_lock_is_released_when_the_holder_exits_without_releasing(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0
    with RunLock(tmp_path / "state"):
        pass


def test_children_do_not_inherit_the_lock(tmp_path: Path) -> None:
    # A long-lived child (gpg-agent, say) must not keep the lock after we exit.
    lock = RunLock(tmp_path)
    lock.acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.release()
        with RunLock(tmp_path):
            pass
    finally:
        child.kill()
        child.wait(timeout=10)


def test_acquire_twice_on_one_object_is_a_bug(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire()
    try:
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # a second release does nothing
