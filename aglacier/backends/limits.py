"""What each destination accepts: part sizes, part counts, archive sizes."""

from __future__ import annotations

from dataclasses import dataclass

from aglacier.units import GiB, MiB, TiB


@dataclass(frozen=True)
class BackendLimits:
    """The part-size rule and counts a destination enforces.

    Every part but the last has exactly ``part_size`` bytes; the last may be
    smaller (but not empty, except in an empty archive).
    """

    min_part_size: int
    max_part_size: int
    max_parts: int
    max_archive_size: int
    #: Glacier vaults only take 1 MiB × 2^n parts.
    power_of_two_mib: bool = False
    #: Part sizes are rounded up to this many bytes when planned automatically.
    granularity: int = MiB

    def part_size_problem(self, part_size: int) -> str | None:
        """Why ``part_size`` breaks the rule, or ``None`` when it is valid."""
        if part_size < self.min_part_size or part_size > self.max_part_size:
            return (
                f"the part size must be from {_mib(self.min_part_size)} "
                f"to {_mib(self.max_part_size)}"
            )
        if self.power_of_two_mib and not _is_power_of_two_mib(part_size):
            return "the part size must be 1 MiB times a power of two (1, 2, 4, 8, ... MiB)"
        return None


def _is_power_of_two_mib(n: int) -> bool:
    return n % MiB == 0 and (n // MiB) & (n // MiB - 1) == 0


def _mib(n: int) -> str:
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n // MiB} MiB"


#: Glacier vault API (2012): 1 MiB × 2^n up to 4 GiB, 10,000 parts, ~40 TiB.
VAULT_LIMITS = BackendLimits(
    min_part_size=MiB,
    max_part_size=4 * GiB,
    max_parts=10_000,
    max_archive_size=40 * TiB,
    power_of_two_mib=True,
)

#: S3 multipart upload: 5 MiB to 5 GiB per part, 10,000 parts, 5 TiB per object.
S3_LIMITS = BackendLimits(
    min_part_size=5 * MiB,
    max_part_size=5 * GiB,
    max_parts=10_000,
    max_archive_size=5 * TiB,
)

#: A local folder: the same shape as S3 so that a test of the plan means something.
LOCAL_LIMITS = BackendLimits(
    min_part_size=MiB,
    max_part_size=5 * GiB,
    max_parts=10_000,
    max_archive_size=50 * TiB,
)
