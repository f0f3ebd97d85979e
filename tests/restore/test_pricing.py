"""Waits, costs and tiers shown before a retrieval is requested."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aglacier.backends.base import Tier
from aglacier.errors import UsageError
from aglacier.restore.pricing import (
    archive_kind,
    check_tier,
    default_tier,
    quote,
    usd,
)
from aglacier.state import Archive

GB = 10**9


def archive(destination: str, storage_class: str | None = None, size: int = 100 * GB) -> Archive:
    return Archive(
        id=7,
        run_id=None,
        source=Path("/home/me/photos"),
        destination=destination,
        archive_id="x.tar.gpg",
        size=size,
        sha256="0" * 64,
        tree_hash="0" * 64,
        part_size=1 << 30,
        storage_class=storage_class,
        host="h",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        description=None,
        manifest=None,
    )


def test_kinds() -> None:
    assert archive_kind(archive("s3://b/p", "DEEP_ARCHIVE")) == "DEEP_ARCHIVE"
    assert archive_kind(archive("s3://b", None)) == "STANDARD"
    assert archive_kind(archive("glacier://v")) == "vault"
    assert archive_kind(archive("file:///backups")) == "local"


def test_default_tiers_standard_to_restore_bulk_to_verify() -> None:
    assert default_tier("DEEP_ARCHIVE", urgent=True) is Tier.STANDARD
    assert default_tier("DEEP_ARCHIVE", urgent=False) is Tier.BULK
    assert default_tier("vault", urgent=False) is Tier.BULK
    assert default_tier("local", urgent=False) is Tier.STANDARD


def test_expedited_deep_archive_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no Expedited"):
        check_tier(archive("s3://b", "DEEP_ARCHIVE"), Tier.EXPEDITED)
    check_tier(archive("s3://b", "GLACIER"), Tier.EXPEDITED)
    check_tier(archive("glacier://v"), Tier.EXPEDITED)


def test_deep_archive_bulk_quote() -> None:
    q = quote(archive("s3://b", "DEEP_ARCHIVE"), Tier.BULK, days=30)
    assert q.wait is not None and q.wait.text() == "up to 48 hours"
    assert q.retrieval_usd == pytest.approx(100 * 0.0025)
    assert q.copy_usd == pytest.approx(100 * 0.023)  # 30 days of a restored copy
    text = "\n".join(q.lines())
    assert "estimates" in text and "us-east-1" in text and "2026" in text
    assert "up to 48 hours" in text and "$2.55" in text


def test_glacier_waits_and_free_bulk() -> None:
    glacier = archive("s3://b", "GLACIER")
    assert quote(glacier, Tier.EXPEDITED, 7).wait.text() == "1-5 minutes"  # type: ignore[union-attr]
    assert quote(glacier, Tier.STANDARD, 7).wait.text() == "3-5 hours"  # type: ignore[union-attr]
    assert quote(glacier, Tier.BULK, 7).retrieval_usd == 0
    vault = quote(archive("glacier://v"), Tier.BULK, 7)
    assert vault.wait is not None and vault.wait.text() == "5-12 hours"
    assert vault.copy_usd == 0 and vault.retrieval_usd == pytest.approx(0.25)


def test_immediate_classes_and_local() -> None:
    instant = quote(archive("s3://b", "GLACIER_IR"), Tier.STANDARD, 7)
    assert instant.wait is None and instant.tier is None
    assert instant.retrieval_usd == pytest.approx(3.0)
    local = quote(archive("file:///x"), Tier.STANDARD, 7)
    assert local.free and local.total_usd == 0
    assert "no cost" in local.lines()[0]


def test_usd() -> None:
    assert usd(0) == "$0"
    assert usd(0.004) == "< $0.01"
    assert usd(1234.5) == "$1,234.50"
