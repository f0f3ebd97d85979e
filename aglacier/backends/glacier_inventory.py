"""A vault's inventory: the vault backend's half for rebuilding a lost catalog.

A vault lists its archives only through an inventory-retrieval job, which
takes hours on AWS and describes the vault as of its last inventory (taken
about once a day, so the newest archives may be missing). The job's output is
kept for about 24 hours. Each archive in it has an id, a size, its tree hash,
a creation date and its description: the compact JSON aglacier writes (see
:func:`aglacier.backends.glacier.archive_description`) or anything another
tool wrote, which makes the archive *foreign*. The plain SHA256 of an archive
is not something a vault keeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anyio import to_thread

from aglacier.backends.base import (
    Inventory,
    InventoryJob,
    ListedArchive,
    RetrievalState,
    SkippedEntry,
    SkipReason,
)
from aglacier.backends.inventory import in_order, parse_utc
from aglacier.errors import (
    BackendError,
    InvalidRequestError,
    NoSuchArchiveError,
    NoSuchDestinationError,
    NotReadyError,
)

#: What an inventory job of ours says about itself (a person sees it in ListJobs).
JOB_DESCRIPTION = "aglacier catalog rebuild"
#: A job restricted to part of the inventory is no use for a rebuild.
_PARTIAL = ("StartDate", "EndDate", "Limit", "Marker")
_STATES = {
    "InProgress": RetrievalState.IN_PROGRESS,
    "Succeeded": RetrievalState.READY,
    "Failed": RetrievalState.FAILED,
}
_HEX64 = re.compile(r"[0-9a-f]{64}")

Pages = Callable[..., AsyncGenerator[dict[str, Any], None]]


class VaultInventory:
    """Inventory jobs of one vault, through the backend's client and helpers.

    ``pages(action, operation)`` yields every page of a list call; ``errors(action,
    **kwargs)`` translates AWS errors (both are :class:`VaultBackend`'s).
    """

    def __init__(
        self,
        client: Any,
        *,
        vault: str,
        account_id: str,
        url: str,
        pages: Pages,
        errors: Callable[..., Any],
    ) -> None:
        self._client = client
        self._where = {"accountId": account_id, "vaultName": vault}
        self._url = url
        self._pages = pages
        self._errors = errors

    async def request(self) -> InventoryJob:
        """Reuse a whole JSON inventory job that succeeded or is running; else InitiateJob."""
        existing = await self._find_job()
        if existing is not None:
            return existing
        try:
            with self._errors(f"request an inventory of {self._url}"):
                response = await self._client.initiate_job(
                    **self._where,
                    jobParameters={
                        "Type": "inventory-retrieval",
                        "Format": "JSON",
                        "Description": JOB_DESCRIPTION,
                    },
                )
        except NoSuchDestinationError:
            await self._describe_vault()  # raises if the vault itself is missing
            raise NotReadyError(
                f"{self._url} has no inventory yet",
                hint="a vault's first inventory is taken about a day after its first "
                "archive: try again tomorrow",
            ) from None
        return InventoryJob(RetrievalState.IN_PROGRESS, job_id=response["jobId"])

    async def status(self, job: InventoryJob) -> InventoryJob:
        """DescribeJob; a job the vault no longer knows is EXPIRED."""
        job_id = _job_id(job)
        try:
            with self._errors(
                f"look up inventory job {job_id} in {self._url}", not_found=NoSuchArchiveError
            ):
                found = await self._client.describe_job(**self._where, jobId=job_id)
        except NoSuchArchiveError:
            return InventoryJob(
                RetrievalState.EXPIRED,
                job_id=job_id,
                requested_at=job.requested_at,
                detail="the vault no longer knows the job (its output is kept for 24 hours)",
            )
        return _job_of(found)

    async def read(self, job: InventoryJob) -> Inventory:
        """GetJobOutput of a ready job, parsed in a worker thread."""
        job_id = _job_id(job)
        if job.state is not RetrievalState.READY:
            raise InvalidRequestError(f"inventory job {job_id} is {job.state}, not ready")
        action = f"read inventory job {job_id} of {self._url}"
        with self._errors(
            action,
            not_found=NoSuchArchiveError,
            not_found_message=f"{action}: the job has expired; request a new inventory",
        ):
            response = await self._client.get_job_output(**self._where, jobId=job_id)
            async with response["body"] as stream:
                body: bytes = await stream.read()
        return await to_thread.run_sync(parse_inventory, body, self._url)

    async def _find_job(self) -> InventoryJob | None:
        usable: list[InventoryJob] = []
        # aclosing: leaving the pages early must close the generator now, not at GC.
        async with aclosing(self._pages(f"list jobs in {self._url}", "list_jobs")) as pages:
            async for page in pages:
                usable.extend(_job_of(job) for job in page.get("JobList", []) if _whole(job))
        ready = [j for j in usable if j.state is RetrievalState.READY]
        running = [j for j in usable if j.state is RetrievalState.IN_PROGRESS]
        for candidates in (ready, running):
            if candidates:  # the newest: its inventory is the most recent
                return max(candidates, key=lambda j: (j.requested_at is not None, j.requested_at))
        return None

    async def _describe_vault(self) -> None:
        with self._errors(f"check {self._url}", not_found_message=f"{self._url} does not exist"):
            await self._client.describe_vault(**self._where)


def parse_inventory(body: bytes, url: str) -> Inventory:
    """An inventory job's JSON output as archives (aglacier's and foreign) and bad entries."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise BackendError(f"the inventory of {url} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("ArchiveList"), list):
        raise BackendError(f"the inventory of {url} has no ArchiveList")
    archives: list[ListedArchive] = []
    skipped: list[SkippedEntry] = []
    for item in document["ArchiveList"]:
        entry = inventory_entry(item)
        if isinstance(entry, ListedArchive):
            archives.append(entry)
        else:
            skipped.append(entry)
    return Inventory(in_order(archives), skipped, taken_at=parse_utc(document.get("InventoryDate")))


def inventory_entry(item: object) -> ListedArchive | SkippedEntry:
    """One archive of an inventory, with what its description says (if it is ours)."""
    if not isinstance(item, dict):
        return SkippedEntry("?", SkipReason.BAD_MANIFEST, "an inventory entry that is no object")
    archive_id, size = item.get("ArchiveId"), item.get("Size")
    tree_hash = str(item.get("SHA256TreeHash", "")).lower()
    created = parse_utc(item.get("CreationDate"))
    if not isinstance(archive_id, str) or not isinstance(size, int) or size < 0:
        return SkippedEntry(str(archive_id), SkipReason.BAD_MANIFEST, "no archive id or size")
    if not _HEX64.fullmatch(tree_hash) or created is None:
        return SkippedEntry(archive_id, SkipReason.BAD_MANIFEST, "no tree hash or date")
    description = item.get("ArchiveDescription")
    text = description if isinstance(description, str) else ""
    ours = parse_description(text)
    if isinstance(ours, str):
        notes = (ours,) if ours else ()
        return ListedArchive(
            archive_id, size, tree_hash, created, None, None, None, description=text, notes=notes
        )
    return ListedArchive(
        archive_id, size, tree_hash, ours.created_at, ours.source, ours.host, ours.part_size,
        description=text, notes=ours.notes,
    )  # fmt: skip


@dataclass(frozen=True)
class Described:
    """What an aglacier archive description says."""

    source: str  # only its end when the description says ``source_cut``
    host: str
    created_at: datetime  # when the backup started
    part_size: int
    notes: tuple[str, ...]


def parse_description(text: str) -> Described | str:
    """What an aglacier description says; otherwise why it is not usable
    (``""``: it is not aglacier's at all)."""
    try:
        document = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(document, dict) or "aglacier" not in document:
        return ""
    source, host = document.get("source"), document.get("host")
    started = parse_utc(document.get("created_at"))
    part_size = document.get("part_size")
    if not (isinstance(source, str) and source and isinstance(host, str) and started):
        return "an aglacier description without source, host or time"
    if not isinstance(part_size, int) or isinstance(part_size, bool) or part_size < 1:
        return "an aglacier description without a part size"
    notes: tuple[str, ...] = ()
    if document.get("source_cut"):
        notes = ("the source path was too long for the description: only its end is kept",)
    return Described(source, host, started, part_size, notes)


def _whole(job: dict[str, Any]) -> bool:
    if job.get("Action") != "InventoryRetrieval":
        return False
    params = job.get("InventoryRetrievalParameters") or {}
    return params.get("Format", "JSON") == "JSON" and not any(params.get(k) for k in _PARTIAL)


def _job_of(job: dict[str, Any]) -> InventoryJob:
    state = _STATES.get(job.get("StatusCode", ""), RetrievalState.IN_PROGRESS)
    return InventoryJob(
        state,
        job_id=job.get("JobId"),
        requested_at=parse_utc(job.get("CreationDate")),
        completed_at=parse_utc(job.get("CompletionDate")),
        detail=job.get("StatusMessage") if state is RetrievalState.FAILED else None,
    )


def _job_id(job: InventoryJob) -> str:
    if job.job_id is None:
        raise InvalidRequestError("a vault inventory needs the id of its job")
    return job.job_id
