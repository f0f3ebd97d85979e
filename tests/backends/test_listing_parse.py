"""What an inventory makes of manifests, keys and vault descriptions (pure functions)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from aglacier.backends.base import ArchiveInfo, ArchiveTotals, ListedArchive, SkipReason
from aglacier.backends.glacier import archive_description
from aglacier.backends.glacier_inventory import Described, parse_description, parse_inventory
from aglacier.backends.inventory import ManifestPair, listed_archive, sort_names
from aglacier.backends.naming import manifest_document
from aglacier.errors import BackendError

INFO = ArchiveInfo(
    source="/home/anna/Fotos é",
    host="anna-laptop",
    created_at=datetime(2026, 11, 5, 10, 30, 5, tzinfo=UTC),
    part_size=8 << 20,
    aglacier_version="1.0",
)
TOTALS = ArchiveTotals(size=123, sha256=b"\x01" * 32, tree_hash=b"\x02" * 32, part_count=1)
KEY = "anna-laptop/home/anna/Fotos_é/20261105T103005Z-abcdef.tar.gpg"


def _manifest(**changes: Any) -> dict[str, Any]:
    document = manifest_document(key=KEY, info=INFO, totals=TOTALS, s3_checksum="x-1")
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def test_keys_are_sorted_into_pairs_and_leftovers() -> None:
    sizes = {
        "a.tar.gpg": 10,
        "a.tar.gpg.manifest.json": 1,
        "b.tar.gpg.manifest.json": 1,
        "c.tar.gpg": 5,
        "notes.manifest.json": 1,
        "README": 3,
    }
    pairs, skipped = sort_names(sizes)
    assert pairs == [ManifestPair("a.tar.gpg.manifest.json", "a.tar.gpg", 10)]
    assert [(s.name, s.reason) for s in skipped] == [
        ("README", SkipReason.FOREIGN),
        ("b.tar.gpg.manifest.json", SkipReason.INCOMPLETE),
        ("c.tar.gpg", SkipReason.NO_MANIFEST),
        ("notes.manifest.json", SkipReason.FOREIGN),
    ]


def test_a_manifest_gives_every_field_of_the_catalog_row() -> None:
    pair = ManifestPair(KEY + ".manifest.json", "moved/" + KEY, 123)
    listed = listed_archive(pair, _manifest(storage_class="GLACIER"))
    assert isinstance(listed, ListedArchive)
    assert listed.archive_id == "moved/" + KEY  # where it is, not where it was written
    assert (listed.source, listed.host, listed.created_at) == (
        INFO.source,
        INFO.host,
        INFO.created_at,
    )
    assert (listed.size, listed.part_size, listed.storage_class) == (123, 8 << 20, "GLACIER")
    assert (listed.sha256, listed.tree_hash) == ("01" * 32, "02" * 32)
    assert listed.manifest is not None and listed.manifest["s3_checksum"] == "x-1"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"format": "other"}, "format"),
        ({"source": 5}, "no source"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"sha256": "AB" * 32}, "sha256"),
        ({"tree_hash": None}, "tree_hash"),
        ({"size": True}, "size"),
        ({"part_size": 0}, "part_size"),
    ],
)
def test_a_damaged_manifest_says_what_is_wrong(changes: dict[str, Any], words: str) -> None:
    pair = ManifestPair("m", "a", 123)
    skipped = listed_archive(pair, _manifest(**changes))
    assert not isinstance(skipped, ListedArchive)
    assert skipped.reason is SkipReason.BAD_MANIFEST and words in skipped.detail


def test_a_description_aglacier_wrote_is_read_back() -> None:
    described = parse_description(archive_description(INFO))
    assert described == Described(INFO.source, INFO.host, INFO.created_at, INFO.part_size, ())


def test_a_cut_source_is_noted() -> None:
    described = parse_description(archive_description(replace(INFO, source="/x" * 1000)))
    assert isinstance(described, Described)
    assert described.source.startswith("...") and described.notes


@pytest.mark.parametrize("text", ["", "photos 2019", "[1, 2]", '{"source": "/a"}'])
def test_other_descriptions_are_foreign(text: str) -> None:
    assert parse_description(text) == ""


def test_an_inventory_keeps_good_entries_and_reports_bad_ones() -> None:
    good = {
        "ArchiveId": "id-1",
        "ArchiveDescription": archive_description(INFO),
        "CreationDate": "2026-11-05T11:00:00Z",
        "Size": 123,
        "SHA256TreeHash": "AB" * 32,
    }
    body = json.dumps(
        {
            "VaultARN": "arn",
            "InventoryDate": "2026-11-06T00:00:00Z",
            "ArchiveList": [good, {**good, "ArchiveId": "id-2", "SHA256TreeHash": "x"}, "?"],
        }
    ).encode()
    inventory = parse_inventory(body, "glacier://v")
    [listed] = inventory.archives
    assert (listed.archive_id, listed.tree_hash, listed.sha256) == ("id-1", "ab" * 32, None)
    assert listed.created_at == INFO.created_at  # the backup's start, from the description
    assert [s.name for s in inventory.skipped] == ["id-2", "?"]
    assert inventory.taken_at == datetime(2026, 11, 6, tzinfo=UTC)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"ArchiveList": 5}'])
def test_an_inventory_that_is_not_one_is_an_error(body: bytes) -> None:
    with pytest.raises(BackendError, match="inventory of glacier://v"):
        parse_inventory(body, "glacier://v")
