"""What bringing an archive back costs and how long it takes, before anything is asked for.

Waits are AWS's published retrieval times; prices are AWS's published us-east-1
list prices (USD) as of 2026. Both vary by region and change over time, so every
figure shown is labelled an estimate. Data transfer out of AWS is not included:
it depends on where the download goes (free inside the region, $0.09/GB to the
internet after the first 100 GB a month).

An archive's *kind* says what a retrieval means for it: ``DEEP_ARCHIVE`` and
``GLACIER`` (S3 objects that need a ``RestoreObject``), ``vault`` (a Glacier job),
``local`` (a file), or another S3 storage class (readable at once, some with a
per-GB retrieval fee).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from aglacier.backends.base import Tier
from aglacier.errors import UsageError
from aglacier.state import Archive
from aglacier.units import format_size

#: Kinds whose archives must be requested (and waited for) before they can be read.
COLD_KINDS = frozenset({"DEEP_ARCHIVE", "GLACIER", "vault"})


@dataclass(frozen=True)
class Wait:
    """How long a retrieval usually takes: from ``low`` up to ``high``."""

    low: timedelta
    high: timedelta

    def text(self) -> str:
        """``"3-5 hours"``, ``"1-5 minutes"``, ``"up to 48 hours"``."""
        if self.high <= timedelta(hours=1):
            unit, scale = "minutes", 60
        else:
            unit, scale = "hours", 3600
        high = round(self.high.total_seconds() / scale)
        if not self.low:
            return f"up to {high} {unit}"
        return f"{round(self.low.total_seconds() / scale)}-{high} {unit}"


def _minutes(low: int, high: int) -> Wait:
    return Wait(timedelta(minutes=low), timedelta(minutes=high))


def _hours(low: int, high: int) -> Wait:
    return Wait(timedelta(hours=low), timedelta(hours=high))


WAITS: dict[tuple[str, Tier], Wait] = {
    ("DEEP_ARCHIVE", Tier.STANDARD): _hours(0, 12),
    ("DEEP_ARCHIVE", Tier.BULK): _hours(0, 48),
    ("GLACIER", Tier.EXPEDITED): _minutes(1, 5),
    ("GLACIER", Tier.STANDARD): _hours(3, 5),
    ("GLACIER", Tier.BULK): _hours(5, 12),
    ("vault", Tier.EXPEDITED): _minutes(1, 5),
    ("vault", Tier.STANDARD): _hours(3, 5),
    ("vault", Tier.BULK): _hours(5, 12),
}


@dataclass(frozen=True)
class Price:
    """USD per GB retrieved and per 1,000 retrieval requests."""

    per_gb: float
    per_1000_requests: float


#: Retrievals that are requested (restore or job), by kind and tier.
RETRIEVAL_PRICES: dict[tuple[str, Tier], Price] = {
    ("DEEP_ARCHIVE", Tier.STANDARD): Price(0.02, 0.10),
    ("DEEP_ARCHIVE", Tier.BULK): Price(0.0025, 0.025),
    ("GLACIER", Tier.EXPEDITED): Price(0.03, 10.00),
    ("GLACIER", Tier.STANDARD): Price(0.01, 0.05),
    ("GLACIER", Tier.BULK): Price(0.0, 0.0),
    ("vault", Tier.EXPEDITED): Price(0.03, 10.00),
    ("vault", Tier.STANDARD): Price(0.01, 0.05),
    ("vault", Tier.BULK): Price(0.0025, 0.025),
}
#: Storage classes read at once: per-GB retrieval fee and GET price.
READ_PRICES: dict[str, Price] = {
    "GLACIER_IR": Price(0.03, 0.01),
    "STANDARD_IA": Price(0.01, 0.001),
    "ONEZONE_IA": Price(0.01, 0.001),
    "INTELLIGENT_TIERING": Price(0.0, 0.0004),
    "STANDARD": Price(0.0, 0.0004),
}
#: USD per 1,000 GETs of a restored copy (one per part).
RESTORED_GET_PER_1000 = 0.0004
#: A restored copy is billed as S3 Standard storage while it is kept.
RESTORED_COPY_PER_GB_MONTH = 0.023
TRANSFER_NOTE = (
    "data transfer out of AWS is extra ($0.09/GB to the internet after the first 100 GB "
    "a month; free inside the region)"
)


def archive_kind(archive: Archive) -> str:
    """``DEEP_ARCHIVE``, ``GLACIER`` or another S3 class, ``vault`` or ``local``."""
    scheme = archive.destination.partition("://")[0]
    if scheme == "glacier":
        return "vault"
    if scheme == "file":
        return "local"
    return archive.storage_class or "STANDARD"


def default_tier(kind: str, *, urgent: bool) -> Tier:
    """Standard for a restore (``urgent``), Bulk (the cheapest) for a verification."""
    return Tier.STANDARD if urgent or kind not in COLD_KINDS else Tier.BULK


def check_tier(archive: Archive, tier: Tier) -> None:
    """Refuse a tier the archive's storage does not offer, before anything is requested."""
    if archive_kind(archive) == "DEEP_ARCHIVE" and tier is Tier.EXPEDITED:
        raise UsageError(
            f"archive {archive.id} is in S3 Glacier Deep Archive, which has no Expedited "
            "retrieval: use --tier standard (up to 12 hours) or --tier bulk (up to 48 hours)"
        )


@dataclass(frozen=True)
class Quote:
    """What one retrieval of an archive is expected to take and cost."""

    kind: str
    tier: Tier | None  # None: nothing to request, the archive is readable at once
    size: int
    parts: int
    days: int
    wait: Wait | None  # None: at once
    retrieval_usd: float
    requests_usd: float
    copy_usd: float

    @property
    def total_usd(self) -> float:
        return self.retrieval_usd + self.requests_usd + self.copy_usd

    @property
    def free(self) -> bool:
        """A local folder: nothing to pay, nothing to confirm."""
        return self.kind == "local"

    def lines(self) -> list[str]:
        """What to show before asking for confirmation."""
        size = f"{format_size(self.size)} in {self.parts} part{'s' * (self.parts != 1)}"
        if self.free:
            return [f"size: {size}; a local file: no retrieval, no cost"]
        when = "readable at once" if self.wait is None else f"usually ready in {self.wait.text()}"
        tier = "no retrieval request" if self.tier is None else f"{self.tier} retrieval"
        costs = f"retrieval {usd(self.retrieval_usd)}, requests {usd(self.requests_usd)}"
        if self.copy_usd:
            costs += f", restored copy kept {self.days} days {usd(self.copy_usd)}"
        return [
            f"size: {size}",
            f"{tier} ({self.kind}): {when}",
            f"estimated cost: {usd(self.total_usd)} ({costs})",
            "  estimates from us-east-1 list prices as of 2026; " + TRANSFER_NOTE,
        ]


def quote(archive: Archive, tier: Tier, days: int) -> Quote:
    """The expected wait and cost of retrieving ``archive`` with ``tier``."""
    kind = archive_kind(archive)
    gigabytes = archive.size / 1e9
    parts = max(1, math.ceil(archive.size / archive.part_size))
    if kind == "local":
        return Quote(kind, None, archive.size, parts, days, None, 0.0, 0.0, 0.0)
    if kind not in COLD_KINDS:
        price = READ_PRICES.get(kind, READ_PRICES["STANDARD"])
        requests = parts / 1000 * price.per_1000_requests
        return Quote(
            kind, None, archive.size, parts, days, None, gigabytes * price.per_gb, requests, 0.0
        )
    price = RETRIEVAL_PRICES[(kind, tier)]
    requests = price.per_1000_requests / 1000
    copy = 0.0
    if kind != "vault":  # S3 keeps a restored copy; a vault job's output costs nothing more
        requests += parts / 1000 * RESTORED_GET_PER_1000
        copy = gigabytes * RESTORED_COPY_PER_GB_MONTH * days / 30
    return Quote(
        kind,
        tier,
        archive.size,
        parts,
        days,
        WAITS[(kind, tier)],
        gigabytes * price.per_gb,
        requests,
        copy,
    )


def usd(amount: float) -> str:
    """``$0.05``; amounts under a cent show as ``< $0.01`` (``$0`` when nothing)."""
    if amount == 0:
        return "$0"
    if amount < 0.01:
        return "< $0.01"
    return f"${amount:,.2f}"
