"""The inventory of a bucket prefix: the S3 backend's half for rebuilding a lost catalog.

ListObjectsV2 (every page) gives every key under the prefix with its size, so
the archives' sizes are checked against their manifests without a HeadObject
each; the manifests (small, in the STANDARD class, readable at once) are read
with up to ``max_connections`` GetObject requests at a time. See
:mod:`aglacier.backends.inventory` for how keys are sorted into archives.
"""

from __future__ import annotations

from typing import Any

import anyio

from aglacier.backends.base import Inventory, ListedArchive, SkippedEntry
from aglacier.backends.inventory import (
    ManifestPair,
    in_order,
    listed_archive,
    sort_names,
    too_large,
)
from aglacier.backends.s3_bucket import S3Bucket


class S3Inventory:
    """Every archive under ``prefix`` in ``bucket``."""

    def __init__(self, bucket: S3Bucket, prefix: str, *, max_connections: int) -> None:
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._max_connections = max_connections

    async def read(self) -> Inventory:
        """List the prefix, read every manifest whose archive is there, sort out the rest."""
        sizes = await self.object_sizes()
        pairs, skipped = sort_names(sizes)
        archives: list[ListedArchive] = []
        limiter = anyio.CapacityLimiter(self._max_connections)

        async def one(pair: ManifestPair) -> None:
            async with limiter:
                entry = await self._entry(pair, sizes[pair.manifest_name])
            if isinstance(entry, ListedArchive):
                archives.append(entry)
            else:
                skipped.append(entry)

        async with anyio.create_task_group() as group:
            for pair in pairs:
                group.start_soon(one, pair)
        return Inventory(in_order(archives), sorted(skipped, key=lambda s: s.name))

    async def object_sizes(self) -> dict[str, int]:
        """Key → size of every object under the prefix (ListObjectsV2, every page)."""
        sizes: dict[str, int] = {}
        token: str | None = None
        seen: set[str] = set()
        while True:
            extra = {"ContinuationToken": token} if token else {}
            with self._bucket.errors(f"list {self._bucket.url(self._prefix)}"):
                page: dict[str, Any] = await self._bucket.client.list_objects_v2(
                    Bucket=self._bucket.name,
                    Prefix=self._prefix,
                    MaxKeys=self._bucket.page_size,
                    **extra,
                )
            for item in page.get("Contents", []):
                sizes[item["Key"]] = int(item["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token or token in seen:
                return sizes  # the last page, or a server that would make us loop forever
            seen.add(token)

    async def _entry(self, pair: ManifestPair, manifest_size: int) -> ListedArchive | SkippedEntry:
        big = too_large(pair, manifest_size)
        if big is not None:
            return big
        return listed_archive(pair, await self._bucket.get_json(pair.manifest_name))
