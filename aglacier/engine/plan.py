"""The dry run: what a backup would do and cost, without sending or writing anything.

Prices are AWS's published us-east-1 list prices (USD) as of 2026; they vary by
region and change over time, so the dry run shows them as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from aglacier.backends.limits import BackendLimits
from aglacier.engine.planner import part_count, plan_part_size
from aglacier.units import GiB, format_size

#: USD per GB-month of storage.
STORAGE_PRICE = {
    "DEEP_ARCHIVE": 0.00099,
    "GLACIER": 0.0036,
    "GLACIER_IR": 0.004,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD": 0.023,
    "vault": 0.0036,
}
#: USD per 1,000 upload requests (initiate, each part, complete).
REQUEST_PRICE = {
    "DEEP_ARCHIVE": 0.05,
    "GLACIER": 0.03,
    "GLACIER_IR": 0.02,
    "STANDARD_IA": 0.01,
    "ONEZONE_IA": 0.01,
    "INTELLIGENT_TIERING": 0.005,
    "STANDARD": 0.005,
    "vault": 0.05,
}
#: Days of storage charged at least, however early an archive is deleted.
MINIMUM_DAYS = {"DEEP_ARCHIVE": 180, "GLACIER": 90, "GLACIER_IR": 90, "vault": 90}


@dataclass(frozen=True)
class Plan:
    source: str
    estimated_size: int
    part_size: int
    parts: int
    requests: int
    price_key: str | None  # None: a local folder, free
    destination: str

    @property
    def monthly_cost(self) -> float:
        if self.price_key is None:
            return 0.0
        return self.estimated_size / 1e9 * STORAGE_PRICE[self.price_key]

    @property
    def request_cost(self) -> float:
        if self.price_key is None:
            return 0.0
        return self.requests / 1000 * REQUEST_PRICE[self.price_key]


def make_plan(
    source: str,
    estimate: int,
    limits: BackendLimits,
    *,
    requested_part_size: int | None,
    destination: str,
    price_key: str | None,
) -> Plan:
    """The plan for one source; raises :class:`PlanError` like a real backup would."""
    size = plan_part_size(estimate, limits, requested=requested_part_size)
    parts = part_count(estimate, size)
    extra = 1 if destination.startswith("s3://") else 0  # the manifest object
    return Plan(source, estimate, size, parts, parts + 2 + extra, price_key, destination)


def describe(plan: Plan) -> list[str]:
    """The plan as lines for a person."""
    lines = [
        f"would back up {plan.source} to {plan.destination}",
        f"  estimated archive size: {format_size(plan.estimated_size)}",
        f"  part size: {format_size(plan.part_size)}, {plan.parts:,} parts, "
        f"{plan.requests:,} upload requests",
    ]
    if plan.price_key is None:
        lines.append("  cost: none (a local folder)")
        return lines
    label = "Glacier vault" if plan.price_key == "vault" else plan.price_key
    lines.append(
        f"  estimated storage cost: ${plan.monthly_cost:,.2f} per month in {label} "
        f"(${STORAGE_PRICE[plan.price_key]}/GB-month, us-east-1 list price), "
        f"plus ${plan.request_cost:,.2f} for the requests"
    )
    days = MINIMUM_DAYS.get(plan.price_key)
    if days:
        lines.append(
            f"  minimum storage duration: {days} days (deleting earlier is charged as if kept)"
        )
    if plan.estimated_size >= 100 * GiB:
        lines.append("  note: staging needs this much free space in the spool folder")
    return lines
