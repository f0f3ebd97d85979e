"""Handlers for retrieval jobs: initiate, describe, list, get output (with ranges)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from .common import (
    Context,
    account_prefix,
    context,
    description,
    empty_response,
    json_response,
    paginate,
    vault_name,
)
from .errors import invalid, missing, not_found, request_id
from .records import ARCHIVE_RETRIEVAL, INVENTORY_RETRIEVAL, Job, iso_time, new_id
from .treehash import MIB, file_range_tree_hash, is_tree_hash_aligned

PAGE = 50
TIERS = ("Expedited", "Standard", "Bulk")
STATUS_CODES = ("InProgress", "Succeeded", "Failed")
_UNSUPPORTED = ("InventoryRetrievalParameters", "SelectParameters", "OutputLocation")
_BYTE_RANGE = re.compile(r"(\d+)-(\d+)")
_HTTP_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


async def initiate_job(request: web.Request) -> web.Response:
    """POST /{account}/vaults/{vault}/jobs: archive-retrieval or inventory-retrieval."""
    ctx = context(request)
    vault = vault_name(request)
    ctx.store.vault(vault)
    params = await _job_parameters(request)
    job = Job(
        job_id=new_id(92),
        action="",
        created=iso_time(),
        ready_at=time.time() + ctx.job_delay,
        description=description(_text(params, "Description")) or None,
        sns_topic=_text(params, "SNSTopic"),
    )
    kind = _text(params, "Type")
    if kind == "archive-retrieval":
        await _archive_job(ctx, vault, params, job)
    elif kind == "inventory-retrieval":
        _inventory_job(ctx, vault, params, job)
    elif kind is None:
        raise missing("Required parameter missing: Type")
    else:
        raise invalid(f"Invalid job type: {kind!r} (the emulator has no select jobs)")
    ctx.store.add_job(vault, job)
    headers = {
        "Location": f"{account_prefix(request)}/jobs/{job.job_id}",
        "x-amz-job-id": job.job_id,
    }
    return empty_response(202, headers)


async def _job_parameters(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        raise missing("Required parameter missing: Job Parameters")
    try:
        params = json.loads(raw)
    except ValueError:
        raise invalid("Job Parameters are not valid JSON") from None
    if not isinstance(params, dict):
        raise invalid("Job Parameters must be a JSON object")
    for key in _UNSUPPORTED:
        if key in params:
            raise invalid(f"{key} is not supported by the emulator")
    return params


def _text(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"Invalid {key}: must be a string")
    return value


async def _archive_job(ctx: Context, vault: str, params: dict[str, Any], job: Job) -> None:
    archive_id = _text(params, "ArchiveId")
    if archive_id is None:
        raise missing("Required parameter missing: ArchiveId")
    archive = ctx.store.archive(vault, archive_id)
    tier = _text(params, "Tier") or "Standard"
    if tier not in TIERS:
        raise invalid(f"Invalid Tier: {tier!r}; expected one of {', '.join(TIERS)}")
    start, end = _retrieval_range(_text(params, "RetrievalByteRange"), archive.size)
    job.action, job.tier, job.archive_id = ARCHIVE_RETRIEVAL, tier, archive_id
    job.archive_size, job.archive_tree_hash = archive.size, archive.tree_hash
    job.archive_description = archive.description
    job.range_start, job.range_end = start, end
    if (start, end) == (0, archive.size - 1):
        job.range_tree_hash = archive.tree_hash
    elif is_tree_hash_aligned(start, end, archive.size):
        path = ctx.store.archive_path(vault, archive_id)
        job.range_tree_hash = await asyncio.to_thread(
            file_range_tree_hash, path, start, end - start + 1
        )


def _retrieval_range(raw: str | None, size: int) -> tuple[int, int]:
    if raw is None:
        return 0, size - 1
    match = _BYTE_RANGE.fullmatch(raw)
    if match is None:
        raise invalid(f"Invalid RetrievalByteRange: {raw!r}; expected 'first-last'")
    start, end = int(match[1]), int(match[2])
    if not start <= end < size:
        raise invalid(f"Invalid RetrievalByteRange: {raw!r} for an archive of {size} bytes")
    if start % MIB or ((end + 1) % MIB and end != size - 1):
        raise invalid(f"Invalid RetrievalByteRange: {raw!r} is not megabyte aligned")
    return start, end


def _inventory_job(ctx: Context, vault: str, params: dict[str, Any], job: Job) -> None:
    for key in ("ArchiveId", "RetrievalByteRange", "Tier"):
        if key in params:
            raise invalid(f"{key} is not allowed for an inventory-retrieval job")
    fmt = _text(params, "Format") or "JSON"
    if fmt not in ("JSON", "CSV"):
        raise invalid(f"Invalid Format: {fmt!r}; expected JSON or CSV")
    archives = ctx.store.archives(vault)
    rows = [
        {
            "ArchiveId": a.archive_id,
            "ArchiveDescription": a.description,
            "CreationDate": a.created,
            "Size": a.size,
            "SHA256TreeHash": a.tree_hash,
        }
        for a in archives
    ]
    doc = {"VaultARN": ctx.store.vault_arn(vault), "InventoryDate": job.created}
    output = _inventory_csv(rows) if fmt == "CSV" else json.dumps({**doc, "ArchiveList": rows})
    data = output.encode()
    ctx.store.inventory_path(vault, job.job_id).write_bytes(data)
    ctx.store.note_inventory(vault, job.created, archives)
    job.action, job.inventory_format, job.inventory_size = INVENTORY_RETRIEVAL, fmt, len(data)


def _inventory_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out,
        ["ArchiveId", "ArchiveDescription", "CreationDate", "Size", "SHA256TreeHash"],
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def describe_job(request: web.Request) -> web.Response:
    """GET /{account}/vaults/{vault}/jobs/{job}."""
    ctx = context(request)
    vault = vault_name(request)
    job = ctx.store.job(vault, request.match_info["job"])
    return json_response(_job_json(ctx, vault, job, time.time()))


async def list_jobs(request: web.Request) -> web.Response:
    """GET /{account}/vaults/{vault}/jobs: by initiation time, with optional filters."""
    ctx = context(request)
    vault = vault_name(request)
    now = time.time()
    jobs = ctx.store.jobs(vault)
    completed = request.query.get("completed")
    if completed is not None:
        if completed not in ("true", "false"):
            raise invalid(f"Invalid completed: {completed!r}; expected true or false")
        jobs = [j for j in jobs if j.done(now) == (completed == "true")]
    status = request.query.get("statuscode")
    if status is not None:
        if status not in STATUS_CODES:
            raise invalid(f"The job status code is not valid: {status}")
        jobs = [j for j in jobs if _status(j, now) == status]
    page, marker = paginate(request, jobs, lambda j: f"{j.seq:012d}", PAGE)
    items = [_job_json(ctx, vault, j, now) for j in page]
    return json_response({"JobList": items, "Marker": marker})


def _status(job: Job, now: float) -> str:
    return "Succeeded" if job.done(now) else "InProgress"


def _job_json(ctx: Context, vault: str, job: Job, now: float) -> dict[str, Any]:
    done = job.done(now)
    data: dict[str, Any] = {
        "JobId": job.job_id,
        "JobDescription": job.description,
        "Action": job.action,
        "VaultARN": ctx.store.vault_arn(vault),
        "CreationDate": job.created,
        "Completed": done,
        "StatusCode": _status(job, now),
        "StatusMessage": "Succeeded" if done else None,
        "CompletionDate": iso_time(job.ready_at) if done else None,
        "SNSTopic": job.sns_topic,
    }
    if job.action == ARCHIVE_RETRIEVAL:
        whole = (job.range_start, job.range_end) == (0, (job.archive_size or 0) - 1)
        data |= {
            "ArchiveId": job.archive_id,
            "ArchiveSizeInBytes": job.archive_size,
            "ArchiveSHA256TreeHash": job.archive_tree_hash,
            "RetrievalByteRange": f"{job.range_start}-{job.range_end}",
            # AWS leaves this null for a whole-archive job still in progress.
            "SHA256TreeHash": None if whole and not done else job.range_tree_hash,
            "Tier": job.tier,
        }
    else:
        data["InventorySizeInBytes"] = job.inventory_size if done else None
        data["InventoryRetrievalParameters"] = {"Format": job.inventory_format}
    return data


async def get_job_output(request: web.Request) -> web.StreamResponse:
    """GET /{account}/vaults/{vault}/jobs/{job}/output, optionally with a byte Range."""
    ctx = context(request)
    vault = vault_name(request)
    job = ctx.store.job(vault, request.match_info["job"])
    if not job.done():
        raise invalid(f"The job is not currently available for download: {job.job_id}")
    path, base, total = _output_source(ctx, vault, job)
    first, last = _requested_range(request.headers.get("Range"), total)
    headers = {"Accept-Ranges": "bytes", "x-amzn-RequestId": request_id()}
    if job.action == ARCHIVE_RETRIEVAL:
        headers["Content-Type"] = "application/octet-stream"
        headers["x-amz-archive-description"] = job.archive_description or ""
        checksum = await _output_tree_hash(job, path, base + first, base + last)
        if checksum is not None:
            headers["x-amz-sha256-tree-hash"] = checksum
    else:
        headers["Content-Type"] = (
            "text/csv" if job.inventory_format == "CSV" else "application/json"
        )
    partial = "Range" in request.headers
    if partial:
        headers["Content-Range"] = f"bytes {first}-{last}/{total}"
    response = web.StreamResponse(status=206 if partial else 200, headers=headers)
    response.content_length = last - first + 1
    cut = ctx.faults.take_drop("GetJobOutput", "response")
    await response.prepare(request)
    await _stream(request, response, path, base + first, last - first + 1, cut)
    return response


def _output_source(ctx: Context, vault: str, job: Job) -> tuple[Path, int, int]:
    if job.action == INVENTORY_RETRIEVAL:
        return ctx.store.inventory_path(vault, job.job_id), 0, job.inventory_size or 0
    assert job.archive_id is not None and job.range_start is not None
    assert job.range_end is not None
    path = ctx.store.archive_path(vault, job.archive_id)
    if not path.exists():
        raise not_found(f"Archive not found: {job.archive_id}")
    return path, job.range_start, job.range_end - job.range_start + 1


def _requested_range(raw: str | None, total: int) -> tuple[int, int]:
    if raw is None:
        return 0, total - 1
    match = _HTTP_RANGE.fullmatch(raw.strip())
    if match is None:
        raise invalid(f"Invalid Range: {raw!r}; expected 'bytes=first-last'")
    first = int(match[1])
    last = int(match[2]) if match[2] else total - 1
    if not first <= last < total:
        raise invalid(f"Invalid Range: {raw!r} for an output of {total} bytes")
    return first, last


async def _output_tree_hash(job: Job, path: Path, first: int, last: int) -> str | None:
    # Both the job's range and the downloaded range must be nodes of the archive's tree.
    if job.range_tree_hash is None or job.archive_size is None:
        return None
    if (first, last) == (job.range_start, job.range_end):
        return job.range_tree_hash
    if not is_tree_hash_aligned(first, last, job.archive_size):
        return None
    return await asyncio.to_thread(file_range_tree_hash, path, first, last - first + 1)


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    path: Path,
    offset: int,
    length: int,
    cut: bool,
) -> None:
    # A "response" drop fault sends half the body, then closes the connection.
    send = length // 2 if cut else length
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    try:
        sent = 0
        while sent < send:
            chunk = await asyncio.to_thread(os.pread, fd, min(MIB, send - sent), offset + sent)
            if not chunk:
                raise OSError(f"{path} ended early")
            await response.write(chunk)
            sent += len(chunk)
    finally:
        os.close(fd)
    if cut and request.transport is not None:
        request.transport.abort()
