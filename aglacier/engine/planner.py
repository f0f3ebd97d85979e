"""Part-size planning: a pure function from an estimate and a destination's limits.

The archive is only known once staging has finished, but the part size must be
fixed before the first part is uploaded. So the plan takes the estimated size
(the source's bytes plus tar and gpg overhead) times a headroom factor, and
picks the smallest part size that keeps the part count within the limit while
staying at or above a floor that keeps the request count (and cost) sensible.
"""

from __future__ import annotations

import math

from aglacier.backends.limits import BackendLimits
from aglacier.errors import PlanError
from aglacier.units import MiB, format_size

#: The original script's ``-b 8``: large enough that requests are cheap, small
#: enough that concurrency × part size stays well under 100 MiB of memory.
DEFAULT_MIN_PART_SIZE = 8 * MiB

#: The archive may grow while it is staged (files change, tar headers, gpg
#: framing): plan for this much more than the estimate.
HEADROOM = 1.25


def part_count(archive_size: int, part_size: int) -> int:
    """How many parts an archive of ``archive_size`` bytes needs (at least one)."""
    return max(1, -(-archive_size // part_size))


def plan_part_size(
    estimated_size: int,
    limits: BackendLimits,
    *,
    requested: int | None = None,
    headroom: float = HEADROOM,
    floor: int = DEFAULT_MIN_PART_SIZE,
) -> int:
    """Choose (or check) the part size for an archive of about ``estimated_size`` bytes.

    With ``requested`` the caller's size is validated, never changed. Raises
    :class:`PlanError` when no valid part size can hold the archive.
    """
    if estimated_size < 0:
        raise ValueError("estimated_size must not be negative")
    if estimated_size > limits.max_archive_size:
        raise PlanError(
            f"an archive of about {format_size(estimated_size)} is larger than the "
            f"{format_size(limits.max_archive_size)} this destination accepts"
        )
    budget = math.ceil(estimated_size * headroom)
    if requested is not None:
        return _check_requested(requested, estimated_size, budget, limits)
    size = max(floor, limits.min_part_size, -(-budget // limits.max_parts))
    size = _round_up(size, limits)
    if size > limits.max_part_size:
        # Not enough room for the headroom: accept when the estimate itself fits.
        size = limits.max_part_size
        if part_count(estimated_size, size) > limits.max_parts:
            raise PlanError(_too_big(estimated_size, limits))
    return size


def _round_up(size: int, limits: BackendLimits) -> int:
    if limits.power_of_two_mib:
        mib = -(-size // MiB)
        return MiB << max(0, (mib - 1).bit_length())
    step = limits.granularity
    return -(-size // step) * step


def _check_requested(requested: int, estimate: int, budget: int, limits: BackendLimits) -> int:
    problem = limits.part_size_problem(requested)
    if problem:
        raise PlanError(f"{problem}, not {format_size(requested)}")
    if part_count(budget, requested) > limits.max_parts:
        smallest = plan_part_size(estimate, limits, floor=limits.min_part_size)
        raise PlanError(
            f"a part size of {format_size(requested)} needs more than "
            f"{limits.max_parts:,} parts for an archive of about {format_size(estimate)} "
            f"(with room to grow); use at least {format_size(smallest)} or 'auto'"
        )
    return requested


def _too_big(estimate: int, limits: BackendLimits) -> str:
    most = limits.max_part_size * limits.max_parts
    return (
        f"an archive of about {format_size(estimate)} cannot be split into at most "
        f"{limits.max_parts:,} parts of at most {format_size(limits.max_part_size)} "
        f"({format_size(most)} in all)"
    )
