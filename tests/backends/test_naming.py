"""Archive keys and manifests, the same on S3 and in a local folder (no server needed)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from aglacier.backends.base import ArchiveInfo, ArchiveTotals
from aglacier.backends.naming import (
    MAX_SOURCE_BYTES,
    archive_key,
    manifest_bytes,
    manifest_document,
    manifest_key,
    parse_manifest,
    random_suffix,
    safe_source_path,
)

WHEN = datetime(2026, 11, 15, 10, 30, 5, tzinfo=UTC)


def info(source: str = "/home/anna/Photos 2024", *, host: str = "anna-laptop") -> ArchiveInfo:
    return ArchiveInfo(source, host, WHEN, 8 << 20, "1.2.3")


# --- keys ---------------------------------------------------------------------------------


def test_key_is_readable() -> None:
    key = archive_key(info(), prefix="backups", suffix="k3x9qa")
    assert key == "backups/anna-laptop/home/anna/Photos_2024/20261115T103005Z-k3x9qa.tar.gpg"
    assert manifest_key(key) == key + ".manifest.json"
    # The local folder has no prefix; a prefix's slashes are the caller's to give.
    assert archive_key(info(), suffix="k3x9qa") == key.removeprefix("backups/")
    assert archive_key(info(), prefix="/backups/", suffix="k3x9qa") == key


def test_runs_in_the_same_second_get_their_own_keys() -> None:
    keys = {archive_key(info(), prefix="backups") for _ in range(50)}
    assert len(keys) == 50
    shape = r"backups/anna-laptop/home/anna/Photos_2024/20261115T103005Z-[a-z2-7]{6}\.tar\.gpg"
    assert all(re.fullmatch(shape, key) for key in keys)
    assert re.fullmatch(r"[a-z2-7]{6}", random_suffix())


def test_a_naive_time_is_taken_as_utc() -> None:
    naive = ArchiveInfo("/x", "h", WHEN.replace(tzinfo=None), 1, "1")
    assert archive_key(naive, suffix="aaaaaa") == "h/x/20261115T103005Z-aaaaaa.tar.gpg"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("anna-laptop", "anna-laptop"),
        ("", "unknown-host"),
        ("..", "_"),
        (".uploads", "uploads"),  # never a hidden folder (the local folder's own)
        ("a/b c", "a_b_c"),
    ],
)
def test_host_is_one_safe_component(host: str, expected: str) -> None:
    key = archive_key(info("/x", host=host), suffix="aaaaaa")
    assert key == f"{expected}/x/20261115T103005Z-aaaaaa.tar.gpg"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/", "_root_"),
        ("/../../etc", "etc"),
        ("/srv/a & b/c#d?e", "srv/a_b/c_d_e"),
        ("/home/zoë/Größe", "home/zoë/Größe"),
        ("/home/jürgen/Bilder", "home/jürgen/Bilder"),
        ("/x/../y/./z/...", "x/y/z/_"),
        ("/tmp/tab\there\nnewline", "tmp/tab_here_newline"),
        ("/home/\udcff\udcfeweird", "home/_weird"),  # a file name that is not UTF-8
    ],
)
def test_source_path_is_made_safe(source: str, expected: str) -> None:
    assert safe_source_path(source) == expected


def test_long_source_path_keeps_its_end_and_a_hash() -> None:
    source = "/home/anna/" + "/".join(f"répertoire-très-long-{i}" for i in range(40)) + "/last"
    safe = safe_source_path(source)
    assert len(safe.encode()) <= MAX_SOURCE_BYTES
    assert safe.startswith("_cut_") and safe.endswith("/répertoire-très-long-39/last")
    assert safe != safe_source_path(source + "x")  # the hash tells them apart
    key = archive_key(info(source), prefix="backups")
    assert len(key.encode()) < 1024


def test_long_sources_stay_distinct_and_short() -> None:
    a = safe_source_path("/data/" + "x" * 300 + "/a")
    b = safe_source_path("/data/" + "x" * 300 + "/b")
    assert a != b
    assert len(a.encode()) <= MAX_SOURCE_BYTES and len(b.encode()) <= MAX_SOURCE_BYTES


def test_one_huge_component_is_bounded() -> None:
    safe = safe_source_path("/" + "ä" * 5000)
    assert len(safe.encode()) <= MAX_SOURCE_BYTES


# --- manifests ----------------------------------------------------------------------------


def _manifest(storage_class: str | None) -> dict[str, object]:
    totals = ArchiveTotals(10, b"\x01" * 32, b"\x02" * 32, 1)
    return manifest_document(
        key="k",
        info=info("/home/zoë"),
        totals=totals,
        s3_checksum="c-1",
        storage_class=storage_class,
    )


def test_manifest_has_the_same_fields_everywhere_but_storage_class() -> None:
    on_s3, local = _manifest("DEEP_ARCHIVE"), _manifest(None)
    assert on_s3.pop("storage_class") == "DEEP_ARCHIVE"
    assert on_s3 == local
    assert local == {
        "format": "aglacier-manifest",
        "format_version": 1,
        "key": "k",
        "source": "/home/zoë",
        "host": "anna-laptop",
        "created_at": "2026-11-15T10:30:05+00:00",
        "size": 10,
        "sha256": "01" * 32,
        "tree_hash": "02" * 32,
        "part_size": 8 << 20,
        "part_count": 1,
        "s3_checksum": "c-1",
        "aglacier_version": "1.2.3",
    }


def test_manifest_bytes_are_ascii_json_and_parse_back() -> None:
    document = _manifest("GLACIER")
    body = manifest_bytes(document)
    assert body.isascii() and body.endswith(b"}\n")
    assert json.loads(body) == document == parse_manifest(body)
    assert parse_manifest(b"[1, 2]") is None
    assert parse_manifest(b"not json") is None
