"""Part-size planning: every result obeys every limit, explicit sizes are checked."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aglacier.backends.limits import LOCAL_LIMITS, S3_LIMITS, VAULT_LIMITS, BackendLimits
from aglacier.engine.planner import (
    DEFAULT_MIN_PART_SIZE,
    HEADROOM,
    part_count,
    plan_part_size,
)
from aglacier.errors import ExitCode, PlanError
from aglacier.units import GiB, MiB, TiB

ALL_LIMITS = [VAULT_LIMITS, S3_LIMITS, LOCAL_LIMITS]
limits_st = st.sampled_from(ALL_LIMITS)


def _fits(limits: BackendLimits, estimate: int) -> bool:
    return estimate <= limits.max_part_size * limits.max_parts and (
        estimate <= limits.max_archive_size
    )


@given(limits=limits_st, estimate=st.integers(min_value=0, max_value=60 * TiB))
def test_auto_part_size_obeys_every_limit(limits: BackendLimits, estimate: int) -> None:
    if not _fits(limits, estimate):
        with pytest.raises(PlanError):
            plan_part_size(estimate, limits)
        return
    size = plan_part_size(estimate, limits)
    assert limits.part_size_problem(size) is None
    assert part_count(estimate, size) <= limits.max_parts
    assert size >= DEFAULT_MIN_PART_SIZE


@given(limits=limits_st, estimate=st.integers(min_value=0, max_value=4 * TiB))
def test_auto_part_size_is_the_smallest_with_headroom(limits: BackendLimits, estimate: int) -> None:
    size = plan_part_size(estimate, limits)
    budget = math.ceil(estimate * HEADROOM)
    if size < limits.max_part_size:
        assert part_count(budget, size) <= limits.max_parts
    smaller = size // 2 if limits.power_of_two_mib else size - limits.granularity
    if smaller >= max(DEFAULT_MIN_PART_SIZE, limits.min_part_size):
        # Any smaller valid size would break the part limit once the archive grows.
        assert part_count(budget, smaller) > limits.max_parts


def test_small_archives_get_the_floor() -> None:
    assert plan_part_size(0, VAULT_LIMITS) == 8 * MiB
    assert plan_part_size(100 * MiB, S3_LIMITS) == 8 * MiB


def test_vault_sizes_are_powers_of_two() -> None:
    # 1 TiB × 1.25 / 10,000 ≈ 131 MiB → the next power of two.
    assert plan_part_size(TiB, VAULT_LIMITS) == 256 * MiB
    assert plan_part_size(TiB, S3_LIMITS) == 132 * MiB


@given(
    limits=limits_st,
    requested=st.integers(min_value=1, max_value=6 * GiB),
    estimate=st.integers(min_value=0, max_value=10 * TiB),
)
def test_requested_size_is_returned_only_when_valid(
    limits: BackendLimits, requested: int, estimate: int
) -> None:
    budget = math.ceil(estimate * HEADROOM)
    expected_ok = (
        limits.part_size_problem(requested) is None
        and estimate <= limits.max_archive_size
        and part_count(budget, requested) <= limits.max_parts
    )
    if not expected_ok:
        with pytest.raises(PlanError):
            plan_part_size(estimate, limits, requested=requested)
        return
    size = plan_part_size(estimate, limits, requested=requested)
    assert size == requested


@pytest.mark.parametrize(
    ("limits", "requested", "words"),
    [
        (VAULT_LIMITS, 3 * MiB, "power of two"),
        (VAULT_LIMITS, 8 * GiB, "from 1 MiB to 4 GiB"),
        (S3_LIMITS, 4 * MiB, "from 5 MiB to 5 GiB"),
    ],
)
def test_invalid_requested_size_says_why(limits: BackendLimits, requested: int, words: str) -> None:
    with pytest.raises(PlanError, match=words) as info:
        plan_part_size(GiB, limits, requested=requested)
    assert info.value.exit_code == ExitCode.PLAN


def test_too_small_requested_size_suggests_one_that_works() -> None:
    with pytest.raises(PlanError, match=r"use at least 128 MiB") as info:
        plan_part_size(TiB // 2, VAULT_LIMITS, requested=8 * MiB)
    assert "10,000 parts" in str(info.value)


def test_archive_over_the_destination_maximum() -> None:
    with pytest.raises(PlanError, match="larger than"):
        plan_part_size(6 * TiB, S3_LIMITS)


def test_part_count() -> None:
    assert part_count(0, MiB) == 1
    assert part_count(MiB, MiB) == 1
    assert part_count(MiB + 1, MiB) == 2
