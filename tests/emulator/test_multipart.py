"""Multipart uploads: round trip, overwrite, abort, pagination, idempotent complete."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.vault_emulator import MIB, VaultEmulator

from .helpers import (
    complete,
    expect_error,
    random_bytes,
    reference_tree_hash,
    send_part,
    upload_parts,
)


@pytest.mark.parametrize(("part_size", "size"), [(MIB, 3 * MIB + 123), (4 * MIB, 9 * MIB)])
def test_round_trip_stores_exactly_the_bytes_sent(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, part_size: int, size: int
) -> None:
    data = random_bytes(size)
    upload_id = glacier.initiate_multipart_upload(
        vaultName=vault, partSize=str(part_size), archiveDescription="home 2026-11-26"
    )["uploadId"]
    for start in reversed(range(0, size, part_size)):  # any order is fine
        send_part(glacier, vault, upload_id, start, data[start : start + part_size])
    response = glacier.complete_multipart_upload(
        vaultName=vault,
        uploadId=upload_id,
        archiveSize=str(size),
        checksum=reference_tree_hash(data),
    )
    archive_id = response["archiveId"]
    assert len(archive_id) == 138
    assert response["checksum"] == reference_tree_hash(data)
    assert response["location"] == f"/123456789012/vaults/{vault}/archives/{archive_id}"
    path = vault_emulator.archive_path(vault, archive_id)
    assert path.read_bytes() == data
    meta = json.loads(path.with_name(archive_id + ".json").read_text())
    assert meta["description"] == "home 2026-11-26"
    assert meta["tree_hash"] == reference_tree_hash(data)
    assert glacier.list_multipart_uploads(vaultName=vault)["UploadsList"] == []


def test_initiate_returns_id_and_location(glacier: Any, vault: str) -> None:
    response = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))
    upload_id = response["uploadId"]
    assert len(upload_id) == 92
    assert response["location"] == f"/123456789012/vaults/{vault}/multipart-uploads/{upload_id}"


def test_part_response_echoes_its_tree_hash(glacier: Any, vault: str) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    chunk = random_bytes(MIB)
    response = glacier.upload_multipart_part(
        vaultName=vault, uploadId=upload_id, range=f"bytes 0-{MIB - 1}/*", body=chunk
    )
    assert response["checksum"] == reference_tree_hash(chunk)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_large_part_streams_through(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    data = random_bytes(64 * MIB + 5)
    upload_id = upload_parts(glacier, vault, data, part_size=64 * MIB)
    archive_id = complete(glacier, vault, upload_id, data)
    assert vault_emulator.archive_path(vault, archive_id).read_bytes() == data


def test_reuploading_a_range_overwrites_it(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    good = random_bytes(2 * MIB)
    upload_id = upload_parts(glacier, vault, good)
    stale = random_bytes(MIB)
    send_part(glacier, vault, upload_id, MIB, stale)
    parts = glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]
    assert parts[1] == {
        "RangeInBytes": f"{MIB}-{2 * MIB - 1}",
        "SHA256TreeHash": reference_tree_hash(stale),
    }
    send_part(glacier, vault, upload_id, MIB, good[MIB:])
    archive_id = complete(glacier, vault, upload_id, good)
    assert vault_emulator.archive_path(vault, archive_id).read_bytes() == good
    assert vault_emulator.counters().part_uploads[(upload_id, f"{MIB}-{2 * MIB - 1}")] == 3


def test_list_parts_reports_the_upload(glacier: Any, vault: str) -> None:
    data = random_bytes(2 * MIB + 10)
    upload_id = glacier.initiate_multipart_upload(
        vaultName=vault, partSize=str(2 * MIB), archiveDescription="desc"
    )["uploadId"]
    send_part(glacier, vault, upload_id, 2 * MIB, data[2 * MIB :])
    send_part(glacier, vault, upload_id, 0, data[: 2 * MIB])
    listing = glacier.list_parts(vaultName=vault, uploadId=upload_id)
    assert listing["MultipartUploadId"] == upload_id
    assert listing["ArchiveDescription"] == "desc"
    assert listing["PartSizeInBytes"] == 2 * MIB
    assert listing["VaultARN"].endswith(f":vaults/{vault}")
    assert "Marker" not in listing
    assert listing["Parts"] == [
        {
            "RangeInBytes": f"0-{2 * MIB - 1}",
            "SHA256TreeHash": reference_tree_hash(data[: 2 * MIB]),
        },
        {
            "RangeInBytes": f"{2 * MIB}-{2 * MIB + 9}",
            "SHA256TreeHash": reference_tree_hash(data[2 * MIB :]),
        },
    ]


def test_list_parts_pages_by_50_and_by_limit(glacier: Any, vault: str) -> None:
    # Short parts are accepted until complete, so one byte per part keeps this fast.
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    for index in range(57):
        send_part(glacier, vault, upload_id, index * MIB, b"x")
    first = glacier.list_parts(vaultName=vault, uploadId=upload_id)
    assert len(first["Parts"]) == 50
    rest = glacier.list_parts(vaultName=vault, uploadId=upload_id, marker=first["Marker"])
    assert len(rest["Parts"]) == 7
    assert "Marker" not in rest
    starts = [int(p["RangeInBytes"].split("-")[0]) for p in first["Parts"] + rest["Parts"]]
    assert starts == [i * MIB for i in range(57)]
    small = glacier.list_parts(vaultName=vault, uploadId=upload_id, limit="20")
    assert len(small["Parts"]) == 20
    assert small["Parts"][-1]["RangeInBytes"].startswith(f"{19 * MIB}-")
    with pytest.raises(ClientError) as excinfo:
        glacier.list_parts(vaultName=vault, uploadId=upload_id, marker="not-a-marker")
    expect_error(excinfo, "InvalidParameterValueException", 400, "marker")


def test_list_uploads_pages_by_50_and_by_limit(glacier: Any, vault: str) -> None:
    ids = {
        glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
        for _ in range(53)
    }
    first = glacier.list_multipart_uploads(vaultName=vault)
    assert len(first["UploadsList"]) == 50
    rest = glacier.list_multipart_uploads(vaultName=vault, marker=first["Marker"])
    assert "Marker" not in rest
    listed = [u["MultipartUploadId"] for u in first["UploadsList"] + rest["UploadsList"]]
    assert sorted(listed) == sorted(ids)
    assert first["UploadsList"][0]["PartSizeInBytes"] == MIB
    paged = glacier.get_paginator("list_multipart_uploads").paginate(
        vaultName=vault, PaginationConfig={"PageSize": 20}
    )
    sizes = [len(page["UploadsList"]) for page in paged]
    assert sizes == [20, 20, 13]


def test_abort_removes_the_upload_and_repeats_quietly(
    glacier: Any, vault: str, data_dir: Any
) -> None:
    upload_id = upload_parts(glacier, vault, random_bytes(MIB + 1))
    glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id)
    glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id)  # idempotent
    with pytest.raises(ClientError) as excinfo:
        glacier.list_parts(vaultName=vault, uploadId=upload_id)
    expect_error(excinfo, "ResourceNotFoundException", 404, upload_id)
    assert not (data_dir / "vaults" / vault / "uploads" / upload_id).exists()
    assert glacier.list_multipart_uploads(vaultName=vault)["UploadsList"] == []


def test_unknown_upload_id_is_404_for_every_operation(glacier: Any, vault: str) -> None:
    ghost = "NoSuchUploadId"
    calls: list[Callable[[], object]] = [
        lambda: glacier.list_parts(vaultName=vault, uploadId=ghost),
        lambda: send_part(glacier, vault, ghost, 0, b"x"),
        lambda: glacier.complete_multipart_upload(
            vaultName=vault, uploadId=ghost, archiveSize="1", checksum="0" * 64
        ),
        lambda: glacier.abort_multipart_upload(vaultName=vault, uploadId=ghost),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        expect_error(excinfo, "ResourceNotFoundException", 404, "The upload ID was not found")


def test_complete_again_returns_the_same_archive(glacier: Any, vault: str) -> None:
    data = random_bytes(MIB + 7)
    upload_id = upload_parts(glacier, vault, data)
    first = complete(glacier, vault, upload_id, data)
    assert complete(glacier, vault, upload_id, data) == first
    with pytest.raises(ClientError) as excinfo:
        glacier.list_parts(vaultName=vault, uploadId=upload_id)
    expect_error(excinfo, "ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize="5", checksum="0" * 64
        )
    expect_error(excinfo, "InvalidParameterValueException", 400, "already completed")


def test_single_request_upload_and_delete(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    data = random_bytes(MIB + 99)
    response = glacier.upload_archive(vaultName=vault, body=data, archiveDescription="small")
    archive_id = response["archiveId"]
    assert response["checksum"] == reference_tree_hash(data)
    path = vault_emulator.archive_path(vault, archive_id)
    assert path.read_bytes() == data
    glacier.delete_archive(vaultName=vault, archiveId=archive_id)
    assert not path.exists()
    glacier.delete_archive(vaultName=vault, archiveId=archive_id)  # idempotent, like AWS
    with pytest.raises(ClientError) as excinfo:
        glacier.delete_archive(vaultName=vault, archiveId="NeverExisted")
    expect_error(excinfo, "ResourceNotFoundException", 404)
