"""Handlers for multipart uploads: initiate, upload part, list, complete, abort."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from .body import receive_body
from .common import (
    account_prefix,
    content_length,
    context,
    description,
    empty_response,
    hash_header,
    json_response,
    paginate,
    parse_int,
    required_header,
    vault_name,
)
from .errors import DropConnection, invalid
from .records import Archive, Part, Upload, iso_time, new_id
from .store import Store
from .treehash import MIB, combine_hex
from .vault_ops import archive_created, check_body

MAX_PARTS = 10_000
PART_SIZES = frozenset(MIB << n for n in range(13))  # 1 MiB .. 4 GiB
PAGE = 50
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/\*")


async def initiate(request: web.Request) -> web.Response:
    """POST /{account}/vaults/{vault}/multipart-uploads."""
    store = context(request).store
    vault = vault_name(request)
    store.vault(vault)
    raw = required_header(request, "x-amz-part-size")
    part_size = int(raw) if raw.isdigit() else -1
    if part_size not in PART_SIZES:
        raise invalid(f"Invalid part size: {raw}. It must be 1 MiB times a power of 2, to 4 GiB")
    text = description(request.headers.get("x-amz-archive-description"))
    upload = store.create_upload(vault, part_size, text)
    headers = {
        "Location": f"{account_prefix(request)}/multipart-uploads/{upload.upload_id}",
        "x-amz-multipart-upload-id": upload.upload_id,
    }
    return empty_response(201, headers)


async def upload_part(request: web.Request) -> web.Response:
    """PUT /{account}/vaults/{vault}/multipart-uploads/{upload}: one part, verified."""
    ctx = context(request)
    vault, upload_id = vault_name(request), request.match_info["upload"]
    if await ctx.faults.gate_part():
        raise DropConnection
    start, end = _content_range(request)
    ctx.faults.count_part(upload_id, f"{start}-{end}", stored=False)
    upload = _open_upload(request, vault, upload_id)
    _check_range(upload, start, end)
    tree_hash = hash_header(request, "x-amz-sha256-tree-hash")
    sha256 = hash_header(request, "x-amz-content-sha256")
    length = content_length(request)
    if length != end - start + 1:
        raise invalid(f"Content-Length {length} does not match Content-Range {start}-{end}")
    body = await receive_body(request, ctx.store.tmp_path())
    try:
        check_body(body, length, sha256, tree_hash)
        _open_upload(request, vault, upload_id)  # it may have gone while the body streamed
        ctx.store.store_part(vault, upload_id, Part(start, end, tree_hash, sha256), body.path)
    finally:
        body.path.unlink(missing_ok=True)
    ctx.faults.count_part(upload_id, f"{start}-{end}", stored=True)
    return empty_response(204, {"x-amz-sha256-tree-hash": tree_hash})


def _content_range(request: web.Request) -> tuple[int, int]:
    raw = required_header(request, "Content-Range")
    match = _CONTENT_RANGE.fullmatch(raw.strip())
    if match is None:
        raise invalid(f"Invalid Content-Range: {raw!r}; expected 'bytes first-last/*'")
    start, end = int(match[1]), int(match[2])
    if end < start:
        raise invalid(f"Invalid Content-Range: {raw!r}; last byte before first")
    return start, end


def _check_range(upload: Upload, start: int, end: int) -> None:
    size = upload.part_size
    if start % size:
        raise invalid(f"Content-Range start {start} is not aligned to the part size {size}")
    if end - start + 1 > size:
        raise invalid(f"Content-Range {start}-{end} is longer than the part size {size}")
    if start // size >= MAX_PARTS:
        raise invalid(f"Part index {start // size} is beyond the {MAX_PARTS}-part limit")


def _open_upload(request: web.Request, vault: str, upload_id: str) -> Upload:
    ctx = context(request)
    upload = ctx.store.upload(vault, upload_id)
    if upload_id in ctx.busy_uploads:
        raise invalid(f"The upload is being completed: {upload_id}")
    return upload


async def list_parts(request: web.Request) -> web.Response:
    """GET /{account}/vaults/{vault}/multipart-uploads/{upload}: sorted by range."""
    store = context(request).store
    vault = vault_name(request)
    upload = store.upload(vault, request.match_info["upload"])
    parts = [upload.parts[k] for k in sorted(upload.parts)]
    page, marker = paginate(request, parts, lambda p: f"{p.start:020d}", PAGE)
    body = _upload_json(store, vault, upload)
    body["Parts"] = [{"RangeInBytes": p.byte_range, "SHA256TreeHash": p.tree_hash} for p in page]
    body["Marker"] = marker
    return json_response(body)


async def list_uploads(request: web.Request) -> web.Response:
    """GET /{account}/vaults/{vault}/multipart-uploads."""
    store = context(request).store
    vault = vault_name(request)
    page, marker = paginate(request, store.uploads(vault), lambda u: u.upload_id, PAGE)
    items = [_upload_json(store, vault, u) for u in page]
    return json_response({"UploadsList": items, "Marker": marker})


def _upload_json(store: Store, vault: str, upload: Upload) -> dict[str, Any]:
    return {
        "MultipartUploadId": upload.upload_id,
        "VaultARN": store.vault_arn(vault),
        "ArchiveDescription": upload.description,
        "PartSizeInBytes": upload.part_size,
        "CreationDate": upload.created,
    }


async def complete(request: web.Request) -> web.Response:
    """POST /{account}/vaults/{vault}/multipart-uploads/{upload}: join and verify."""
    ctx = context(request)
    vault, upload_id = vault_name(request), request.match_info["upload"]
    size = parse_int(required_header(request, "x-amz-archive-size"), "x-amz-archive-size")
    tree_hash = hash_header(request, "x-amz-sha256-tree-hash")
    repeated = ctx.store.completion(vault, upload_id)
    if repeated is not None:
        # Complete is idempotent on AWS: a retry after a lost answer gets the same archive.
        if (repeated.size, repeated.tree_hash) != (size, tree_hash):
            raise invalid(f"The upload was already completed with other values: {upload_id}")
        return archive_created(request, ctx.store.archive(vault, repeated.archive_id))
    upload = _open_upload(request, vault, upload_id)
    parts = _checked_parts(upload, size, tree_hash)
    ctx.busy_uploads.add(upload_id)
    try:
        sources = [ctx.store.part_path(vault, upload_id, p) for p in parts]
        joined = ctx.store.tmp_path()
        await asyncio.to_thread(_join, sources, joined)
        archive = Archive(new_id(138), size, tree_hash, upload.description, iso_time())
        ctx.store.finish_upload(vault, upload_id, joined, archive)
    finally:
        ctx.busy_uploads.discard(upload_id)
    return archive_created(request, archive)


def _checked_parts(upload: Upload, size: int, tree_hash: str) -> list[Part]:
    parts = [upload.parts[k] for k in sorted(upload.parts)]
    if not parts:
        raise invalid("No parts were uploaded; an archive needs at least one")
    expected = 0
    for index, part in enumerate(parts):
        if part.start != expected:
            raise invalid(f"Missing part: no part covers bytes from {expected}")
        if index < len(parts) - 1 and part.size != upload.part_size:
            raise invalid(
                f"Part {part.byte_range} is {part.size} bytes; all parts but the last must be "
                f"{upload.part_size}"
            )
        expected = part.end + 1
    if size != expected:
        raise invalid(f"x-amz-archive-size {size} does not match the {expected} bytes uploaded")
    # Every part but the last is a full 2^n MiB sub-tree, so the parts' tree hashes are the
    # archive tree's nodes at that level and combine into its root.
    actual = combine_hex(p.tree_hash for p in parts)
    if actual != tree_hash:
        raise invalid(
            f"Checksum mismatch: x-amz-sha256-tree-hash is {tree_hash} but the uploaded parts "
            f"have tree hash {actual}"
        )
    return parts


def _join(sources: list[Path], target: Path) -> None:
    with target.open("wb") as out:
        for source in sources:
            with source.open("rb") as part:
                shutil.copyfileobj(part, out, MIB)


async def abort(request: web.Request) -> web.Response:
    """DELETE /{account}/vaults/{vault}/multipart-uploads/{upload}: repeating it succeeds."""
    ctx = context(request)
    vault, upload_id = vault_name(request), request.match_info["upload"]
    ctx.store.vault(vault)
    if upload_id not in ctx.aborted_uploads:
        _open_upload(request, vault, upload_id)
        ctx.store.remove_upload(vault, upload_id)
        ctx.aborted_uploads.add(upload_id)
    return empty_response(204)
