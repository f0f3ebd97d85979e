"""Rebuilding the catalog of finished archives from the destination itself.

For someone whose machine and state are gone: :func:`fetch_inventory` gets the
destination's list of archives (at once from S3 and local folders; from a
vault through an inventory job tracked in ``retrievals``), and
:func:`rebuild_catalog` adds what the catalog lacks. See ``docs/catalog.md``.
"""

from .inventory_job import fetch_inventory, finish_inventory
from .rebuild import UNKNOWN_SHA256, RebuildResult, Skipped, rebuild_catalog

__all__ = [
    "UNKNOWN_SHA256",
    "RebuildResult",
    "Skipped",
    "fetch_inventory",
    "finish_inventory",
    "rebuild_catalog",
]
