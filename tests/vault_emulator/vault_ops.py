"""Handlers for vaults and single-request archives (UploadArchive, DeleteArchive)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .body import Received, receive_body
from .common import (
    account_prefix,
    content_length,
    context,
    description,
    empty_response,
    hash_header,
    json_response,
    paginate,
    vault_name,
)
from .errors import invalid
from .records import Archive, Vault, iso_time, new_id
from .store import Store

MAX_SINGLE_UPLOAD = 4 * 1024**3
VAULTS_PAGE = 10


async def create_vault(request: web.Request) -> web.Response:
    """PUT /{account}/vaults/{vault}: idempotent."""
    context(request).store.create_vault(vault_name(request))
    return empty_response(201, {"Location": account_prefix(request)})


async def describe_vault(request: web.Request) -> web.Response:
    """GET /{account}/vaults/{vault}."""
    store = context(request).store
    return json_response(_vault_json(store, store.vault(vault_name(request))))


async def list_vaults(request: web.Request) -> web.Response:
    """GET /{account}/vaults: ASCII order, marker = ARN of the first vault of the next page."""
    store = context(request).store
    page, marker = paginate(
        request, store.vaults(), lambda v: store.vault_arn(v.name), VAULTS_PAGE, opaque=False
    )
    return json_response({"VaultList": [_vault_json(store, v) for v in page], "Marker": marker})


async def delete_vault(request: web.Request) -> web.Response:
    """DELETE /{account}/vaults/{vault}: only when it holds no archives and no uploads."""
    context(request).store.delete_vault(vault_name(request))
    return empty_response(204)


def _vault_json(store: Store, vault: Vault) -> dict[str, Any]:
    return {
        "VaultARN": store.vault_arn(vault.name),
        "VaultName": vault.name,
        "CreationDate": vault.created,
        "LastInventoryDate": vault.last_inventory,
        "NumberOfArchives": vault.inventory_archives,
        "SizeInBytes": vault.inventory_size,
    }


async def upload_archive(request: web.Request) -> web.Response:
    """POST /{account}/vaults/{vault}/archives: the whole archive in one request."""
    store = context(request).store
    vault = vault_name(request)
    store.vault(vault)
    archive_description = description(request.headers.get("x-amz-archive-description"))
    tree_hash = hash_header(request, "x-amz-sha256-tree-hash")
    sha256 = hash_header(request, "x-amz-content-sha256")
    length = content_length(request)
    if length == 0:
        raise invalid("Invalid Content-Length: 0")
    if length > MAX_SINGLE_UPLOAD:
        raise invalid(f"Invalid Content-Length: {length} exceeds {MAX_SINGLE_UPLOAD}")
    body = await receive_body(request, store.tmp_path())
    try:
        check_body(body, length, sha256, tree_hash)
        archive = Archive(new_id(138), body.size, body.tree_hash, archive_description, iso_time())
        store.add_archive(vault, body.path, archive)
    finally:
        body.path.unlink(missing_ok=True)
    return archive_created(request, archive)


def check_body(body: Received, length: int, sha256: str, tree_hash: str) -> None:
    """Reject a received body whose length or checksums differ from what was declared."""
    if body.size != length:
        raise invalid(f"Body length {body.size} does not match the declared length {length}")
    if body.sha256 != sha256:
        raise invalid(
            f"Checksum mismatch: x-amz-content-sha256 is {sha256} but the received data "
            f"has SHA256 {body.sha256}"
        )
    if body.tree_hash != tree_hash:
        raise invalid(
            f"Checksum mismatch: x-amz-sha256-tree-hash is {tree_hash} but the received "
            f"data has tree hash {body.tree_hash}"
        )


def archive_created(request: web.Request, archive: Archive) -> web.Response:
    """The 201 answer of UploadArchive and CompleteMultipartUpload."""
    headers = {
        "Location": f"{account_prefix(request)}/archives/{archive.archive_id}",
        "x-amz-archive-id": archive.archive_id,
        "x-amz-sha256-tree-hash": archive.tree_hash,
    }
    return empty_response(201, headers)


async def delete_archive(request: web.Request) -> web.Response:
    """DELETE /{account}/vaults/{vault}/archives/{archive}: repeating it succeeds."""
    context(request).store.delete_archive(vault_name(request), request.match_info["archive"])
    return empty_response(204)
