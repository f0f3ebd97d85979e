"""What every backend checks of the parts a ``complete`` names, before it sends anything.

A server checks some of this itself (S3 refuses a gap in the part numbers, a
vault a size that does not match the parts it holds), but not all, and not
with a message that names the part: a part list the engine got wrong is a bug,
and it should fail the same way on every destination.
"""

from __future__ import annotations

from collections.abc import Sequence

from aglacier.backends.base import ArchiveTotals, CompletePart
from aglacier.errors import InvalidRequestError


def ordered_parts(
    parts: Sequence[CompletePart], totals: ArchiveTotals, part_size: int
) -> list[CompletePart]:
    """The parts by number: once each from 0 to ``totals.part_count - 1``, every one
    but the last exactly ``part_size`` bytes, adding up to ``totals.size``.

    Raises :class:`~aglacier.errors.InvalidRequestError` for missing or misshapen parts.
    """
    ordered = sorted(parts, key=lambda p: p.checksums.number)
    numbers = [p.checksums.number for p in ordered]
    if not numbers or numbers != list(range(totals.part_count)):
        raise InvalidRequestError(
            f"complete needs parts 0 to {totals.part_count - 1} once each, got {len(parts)} parts"
        )
    for part in ordered[:-1]:
        if part.checksums.size != part_size:
            raise InvalidRequestError(
                f"part {part.checksums.number} has {part.checksums.size} bytes; "
                f"every part but the last must have {part_size}"
            )
    if sum(p.checksums.size for p in ordered) != totals.size:
        raise InvalidRequestError(f"the parts do not add up to {totals.size} bytes")
    return ordered
