"""What only the local folder promises: its layout, names, manifest, and crash safety."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import pickle
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from aglacier import __version__
from aglacier.backends import local_files, local_store, naming
from aglacier.backends.base import (
    ArchiveInfo,
    ArchiveTotals,
    CompletePart,
    PartChecksums,
    StoredArchive,
    Tier,
    Upload,
)
from aglacier.backends.local import LocalBackend
from aglacier.errors import (
    BackendError,
    ChecksumRejectedError,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    UploadNotFoundError,
)
from aglacier.units import MiB
from tests.backends.conftest import Spooled, random_bytes, spool, upload_parts

pytestmark = pytest.mark.anyio

WHEN = datetime(2026, 11, 26, 8, 6, 5, tzinfo=UTC)


def _info(part_size: int = MiB, *, source: str = "/home/alice/My Documents") -> ArchiveInfo:
    return ArchiveInfo(source, "alice-laptop", WHEN, part_size, __version__)


@pytest.fixture
async def local(tmp_path: Path) -> LocalBackend:
    (tmp_path / "backups").mkdir()  # a configured folder must exist
    backend = LocalBackend(tmp_path / "backups")
    await backend.check()
    return backend


def _visible_files(root: Path) -> list[str]:
    """Files a person browsing the folder sees: everything outside ``.uploads``."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".uploads" not in p.relative_to(root).parts
    )


async def _staged(local: LocalBackend, spooled: Spooled) -> tuple[Upload, list[CompletePart]]:
    upload = await local.start_upload(_info(spooled.part_size))
    uploaded = await upload_parts(local, upload, spooled)
    return upload, spooled.complete_parts(uploaded)


# --- check: the destination folder --------------------------------------------------


async def test_check_never_creates_a_missing_folder(tmp_path: Path) -> None:
    # An empty mount point with nothing mounted on it looks like this.
    (tmp_path / "mnt").mkdir()
    backend = LocalBackend(tmp_path / "mnt" / "backups")
    with pytest.raises(NoSuchDestinationError, match="does not exist"):
        await backend.check()
    assert not (tmp_path / "mnt" / "backups").exists()
    assert backend.url == (tmp_path / "mnt" / "backups").as_uri()


async def test_check_never_creates_a_missing_parent(tmp_path: Path) -> None:
    # An unmounted disk looks like this: the backup must not land on the system disk.
    backend = LocalBackend(tmp_path / "media" / "usb" / "backups")
    with pytest.raises(NoSuchDestinationError):
        await backend.check()
    assert not (tmp_path / "media").exists()


async def test_check_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "backups").write_text("not a folder")
    with pytest.raises(NoSuchDestinationError):
        await LocalBackend(tmp_path / "backups").check()


async def test_check_finishes_a_removal_a_crash_cut_short(local: LocalBackend) -> None:
    half_removed = local.root / ".uploads" / ".aBcDeFgHiJkLmNoPqRsTuVwX.deleting"
    half_removed.mkdir(parents=True)
    (half_removed / "part-7").write_bytes(b"x")

    await local.check()

    assert not half_removed.exists()


async def test_a_missing_folder_is_no_such_destination(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "gone")
    with pytest.raises(NoSuchDestinationError):
        await backend.start_upload(_info())
    with pytest.raises(NoSuchDestinationError):
        await backend.list_pending()
    assert not (tmp_path / "gone").exists()


async def test_part_size_outside_the_limits_is_refused(local: LocalBackend) -> None:
    with pytest.raises(InvalidRequestError):
        await local.start_upload(_info(part_size=1000))


# --- names and manifest (the key shape itself: test_naming.py) -----------------------

#: The S3 backend's key shape, without a prefix.
KEY = re.compile(r"alice-laptop/home/alice/My_Documents/20261126T080605Z-[a-z2-7]{6}\.tar\.gpg")


async def test_archive_and_manifest_appear_side_by_side(local: LocalBackend) -> None:
    spooled = spool(random_bytes(2 * MiB + 5), MiB)
    upload, parts = await _staged(local, spooled)
    assert upload.key is not None and KEY.fullmatch(upload.key)

    stored = await local.complete(upload, _info(), parts, spooled.totals)

    assert stored == StoredArchive(upload.key, (local.root / upload.key).as_uri(), 2 * MiB + 5)
    assert _visible_files(local.root) == [upload.key, upload.key + ".manifest.json"]
    assert list((local.root / ".uploads").iterdir()) == []
    manifest = json.loads((local.root / (upload.key + ".manifest.json")).read_text())
    assert manifest == {
        "format": "aglacier-manifest",
        "format_version": 1,
        "key": upload.key,
        "source": "/home/alice/My Documents",
        "host": "alice-laptop",
        "created_at": WHEN.isoformat(),
        "size": 2 * MiB + 5,
        "sha256": spooled.totals.sha256.hex(),
        "tree_hash": spooled.totals.tree_hash.hex(),
        "part_size": MiB,
        "part_count": 3,
        "s3_checksum": s3_composite(spooled),
        "aglacier_version": __version__,
    }


async def test_a_second_backup_in_the_same_second_gets_its_own_name(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await local.start_upload(_info())
    second = await local.start_upload(_info())
    assert first.key is not None and second.key is not None
    assert KEY.fullmatch(first.key) and KEY.fullmatch(second.key)
    assert second.key != first.key
    # Even when the random suffix repeats, the folder never hands out a key twice.
    suffixes = iter([first.key[-14:-8], second.key[-14:-8], "third3"])
    monkeypatch.setattr(naming, "random_suffix", lambda: next(suffixes))
    third = await local.start_upload(_info())
    assert third.key == first.key[:-14] + "third3.tar.gpg"


def s3_composite(spooled: Spooled) -> str:
    """S3's checksum of the parts, computed here without aglacier."""
    whole = hashlib.sha256(b"".join(p.sha256 for p in spooled.parts)).digest()
    return f"{base64.b64encode(whole).decode()}-{len(spooled.parts)}"


# --- what complete checks -----------------------------------------------------------


async def test_complete_rejects_a_tree_hash_its_parts_do_not_make(local: LocalBackend) -> None:
    spooled = spool(random_bytes(MiB + 1), MiB)
    upload, parts = await _staged(local, spooled)
    totals = spooled.totals
    wrong_tree = ArchiveTotals(totals.size, totals.sha256, bytes(32), totals.part_count)

    with pytest.raises(ChecksumRejectedError):
        await local.complete(upload, _info(), parts, wrong_tree)

    assert _visible_files(local.root) == []
    assert [p.number for p in await local.list_parts(upload)] == [0, 1]
    await local.complete(upload, _info(), parts, totals)  # the upload is still whole


async def test_complete_rejects_parts_their_acknowledgements_do_not_vouch_for(
    local: LocalBackend,
) -> None:
    spooled = spool(random_bytes(2 * MiB), MiB)
    upload, parts = await _staged(local, spooled)
    other = spool(random_bytes(2 * MiB, seed=1), MiB)
    claimed = [CompletePart(other.parts[0], None), parts[1]]  # other bytes than were stored
    wrong_etag = [CompletePart(parts[0].checksums, "0" * 64), parts[1]]

    for wrong in (claimed, wrong_etag):
        with pytest.raises(ChecksumRejectedError):
            await local.complete(upload, _info(), wrong, spooled.totals)

    assert _visible_files(local.root) == []
    stored = await local.complete(upload, _info(), parts, spooled.totals)
    assert (local.root / stored.archive_id).read_bytes() == spooled.data


async def test_parts_beyond_the_last_are_cut_off(local: LocalBackend) -> None:
    spooled = spool(random_bytes(2 * MiB + 5), MiB)
    upload, parts = await _staged(local, spooled)
    extra = random_bytes(MiB, seed=2)
    stray = PartChecksums(3, 3 * MiB, MiB, hashlib.sha256(extra).digest(), bytes(32))
    await local.upload_part(upload, stray, extra)

    stored = await local.complete(upload, _info(), parts, spooled.totals)

    assert (local.root / stored.archive_id).read_bytes() == spooled.data


async def test_complete_rejects_missing_and_misshapen_parts(local: LocalBackend) -> None:
    spooled = spool(random_bytes(2 * MiB + 1), MiB)
    upload = await local.start_upload(_info())
    await upload_parts(local, upload, spooled, [0, 2])  # part 1 never sent
    parts = [CompletePart(part, None) for part in spooled.parts]

    with pytest.raises(InvalidRequestError):
        await local.complete(upload, _info(), parts, spooled.totals)
    with pytest.raises(InvalidRequestError):
        await local.complete(upload, _info(), parts[:2], spooled.totals)
    assert _visible_files(local.root) == []


async def test_parts_are_written_in_place_into_one_file(local: LocalBackend) -> None:
    spooled = spool(random_bytes(3 * MiB + 17), MiB)
    upload = await local.start_upload(_info())
    await upload_parts(local, upload, spooled, [2, 0])
    folder = local.root / ".uploads" / upload.upload_id

    assembly = (folder / "archive.tmp").read_bytes()
    assert assembly[:MiB] == spooled.body(0)
    assert assembly[2 * MiB :] == spooled.body(2)
    assert (folder / "part-2.sha256").read_text() == f"{spooled.parts[2].sha256.hex()} {MiB}\n"
    assert sorted(p.name for p in folder.iterdir()) == [
        "archive.tmp",
        "part-0.sha256",
        "part-2.sha256",
        "upload.json",
    ]


async def test_a_part_must_sit_where_its_number_says(local: LocalBackend) -> None:
    spooled = spool(random_bytes(2 * MiB), MiB)
    upload = await local.start_upload(_info())
    part = spooled.parts[1]
    moved = PartChecksums(1, 0, part.size, part.sha256, part.tree_hash)
    with pytest.raises(InvalidRequestError):
        await local.upload_part(upload, moved, spooled.body(1))


# --- ids and names from outside are not paths -----------------------------------------


async def test_upload_ids_cannot_escape_the_folder(local: LocalBackend) -> None:
    spooled = spool(random_bytes(10), MiB)
    for upload_id in ("../../etc", "..", ".uploads", ""):
        with pytest.raises(UploadNotFoundError):
            await local.upload_part(Upload(upload_id, None), spooled.parts[0], spooled.data)


async def test_archive_ids_cannot_escape_the_folder(local: LocalBackend, tmp_path: Path) -> None:
    (tmp_path / "secret.tar.gpg").write_bytes(b"not yours")
    for archive_id in ("../secret.tar.gpg", str(tmp_path / "secret.tar.gpg"), "a/b"):
        with pytest.raises(NoSuchArchiveError):
            await local.request_retrieval(archive_id, tier=Tier.BULK, days=1)


async def test_a_part_without_its_acknowledgement_is_not_listed(local: LocalBackend) -> None:
    spooled = spool(random_bytes(3 * MiB), MiB)
    upload = await local.start_upload(_info())
    await upload_parts(local, upload, spooled, [0])
    folder = local.root / ".uploads" / upload.upload_id
    # What a crash between writing a part and acknowledging it leaves behind:
    with (folder / "archive.tmp").open("r+b") as assembly:
        assembly.seek(MiB)
        assembly.write(spooled.body(1))
    # ... and a crash while an acknowledgement is written (never renamed into place
    # half-written, but a file system may lose its contents):
    (folder / "part-2.sha256").write_bytes(spooled.parts[2].sha256.hex()[:20].encode())

    assert [p.number for p in await local.list_parts(upload)] == [0]


async def test_a_part_sent_again_is_unacknowledged_until_its_new_bytes_are_synced(
    local: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    spooled = spool(random_bytes(2 * MiB), MiB)
    upload, parts = await _staged(local, spooled)
    other = spool(random_bytes(2 * MiB, seed=1), MiB)

    real_write_part = local_files.write_part

    def crash(assembly: Path, offset: int, body: bytes) -> None:
        real_write_part(assembly, offset, body)  # the new bytes are in place, then power fails
        raise OSError(errno.EIO, "the disk went away")

    monkeypatch.setattr(local_store, "write_part", crash)
    with pytest.raises(BackendError):
        await local.upload_part(upload, other.parts[1], other.body(1))
    monkeypatch.undo()

    assert [p.number for p in await local.list_parts(upload)] == [0]
    with pytest.raises(InvalidRequestError):
        await local.complete(upload, _info(), parts, spooled.totals)
    await local.upload_part(upload, spooled.parts[1], spooled.body(1))
    stored = await local.complete(upload, _info(), parts, spooled.totals)
    assert (local.root / stored.archive_id).read_bytes() == spooled.data


# --- crashes ------------------------------------------------------------------------

# Runs complete in a child process that stops (and is killed) just before one rename.
_CRASHING_COMPLETE = """
import pickle, sys, time
from pathlib import Path

import anyio

from aglacier.backends.local import LocalBackend

root, job, ready, stop_before = sys.argv[1:]
real_replace = Path.replace

def replace(self, target):
    if stop_before in self.name:
        Path(ready).touch()
        time.sleep(60)
    return real_replace(self, target)

Path.replace = replace
upload, info, parts, totals = pickle.loads(Path(job).read_bytes())
anyio.run(LocalBackend(Path(root)).complete, upload, info, parts, totals)
"""


async def _crash_complete(
    local: LocalBackend, tmp_path: Path, job: tuple[object, ...], stop_before: str
) -> None:
    """Run complete in a child process and kill it just before it renames ``stop_before``."""
    (tmp_path / "job").write_bytes(pickle.dumps(job))
    ready = tmp_path / "ready"
    args = [str(local.root), str(tmp_path / "job"), str(ready), stop_before]
    async with await anyio.open_process([sys.executable, "-c", _CRASHING_COMPLETE, *args]) as child:
        with anyio.fail_after(30):
            while not await anyio.Path(ready).exists():
                assert child.returncode is None, "the child ended before the crash point"
                await anyio.sleep(0.02)
        child.kill()
        await child.wait()


async def test_a_crash_before_the_archive_appears_leaves_nothing_visible(
    local: LocalBackend, tmp_path: Path
) -> None:
    spooled = spool(random_bytes(3 * MiB + 17), MiB)
    upload, parts = await _staged(local, spooled)
    info, totals = _info(), spooled.totals

    await _crash_complete(local, tmp_path, (upload, info, parts, totals), "archive.tmp")

    assert _visible_files(local.root) == []
    assert await local.find_completed(upload, info, totals) is None
    assert upload.upload_id in {p.upload_id for p in await local.list_pending()}
    assert len(await local.list_parts(upload)) == 4
    stored = await local.complete(upload, info, parts, totals)  # resume finishes the job
    assert (local.root / stored.archive_id).read_bytes() == spooled.data


async def test_a_crash_after_the_archive_appeared_is_found_and_tidied(
    local: LocalBackend, tmp_path: Path
) -> None:
    spooled = spool(random_bytes(2 * MiB), MiB)
    upload, parts = await _staged(local, spooled)
    info, totals = _info(), spooled.totals
    assert upload.key is not None

    await _crash_complete(local, tmp_path, (upload, info, parts, totals), ".manifest.json")

    assert _visible_files(local.root) == [upload.key]  # whole, without its manifest yet
    assert (local.root / upload.key).read_bytes() == spooled.data
    found = await local.find_completed(upload, info, totals)
    assert found is not None and found.archive_id == upload.key
    assert _visible_files(local.root) == [upload.key, upload.key + ".manifest.json"]
    assert await local.list_pending() == []
